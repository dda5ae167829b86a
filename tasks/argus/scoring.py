"""ARGUS's cost of one caption against another: judge-reply parsing, sentence splitting, evidence matching and
the order-penalised DP of the official ``DPHallucinationMeasure`` (JARVVVIS/argus ``code/compute_metrics.py`` and
``code/utils/line_by_line_utils.py``, commit 2f21672), re-implemented here, not copied; its numbers are pinned to
the official code's by tests/tasks/test_argus.py. Pure functions of strings, no I/O, no judge.

One judgement compares a *target* caption, line by line as the judge split and labelled it, with a *source*
caption, split here into sentences. Hallucination: source = human caption, target = model caption;
omission: source = model caption, target = human caption. Per target node i and source line j:

* base cost c(i, j) = 1 unless the node is entailed; an entailed summary or visual-description costs 0
  anywhere; an entailed dynamic-action costs 0 only at its evidence line e_i (else 1);
* order penalty when node i goes to line j: LAMBDA for every earlier node on the current best path that is
  an entailed dynamic-action placed after j; paid by node i unless it is neither a dynamic-action nor entailed
  (the official condition, reproduced literally: it also charges non-entailed actions and entailed non-actions);
* dp[i+1][j] = min over j' of dp[i][j'] + c(i, j) + penalty(i, j, path(i, j')), path of the first argmin
  kept (the penalty depends on the path, so this is the official greedy DP, not an exact optimum);
* cost = min_j dp[N][j]; normaliser = (N - K) + LAMBDA * K (K - 1) / 2 with K entailed dynamic-actions;
  ArgusCost = cost / normaliser, in [0, 1] except when an entailed action has no evidence line (logged).

Reproduced literally: the sentence rules, the fuzzy score 0.4 LCS (characters) + 0.3 word overlap + 0.3
difflib ratio with its 0.3 threshold, the boilerplate rule (a target line of fewer than 3 words or mostly a
stock phrase becomes an entailed summary; 40 % or more such lines fail the clip), the float accumulation
order, and the official parser's reading of an empty Evidence field (it takes the next line, usually
"- Reasoning: ...", as the evidence, which gives an entailed action a fuzzy evidence line).
Guards added: a zero normaliser or an empty caption fails the clip (the official code divides by zero or
crashes there); the judge's labels are read case- and Markdown-insensitively (the official parser needs
exact lower-case words and indented fields, and otherwise drops the clip).
"""
from __future__ import annotations

import bisect
import difflib
import re
from dataclasses import dataclass, field

LAMBDA = 0.1  # order_penalty_fac, hard-coded in the official compute_metrics main()
EVIDENCE_THRESHOLD = 0.3  # a fuzzy score below this means "no evidence line"
EVIDENCE_WEIGHTS = (0.4, 0.3, 0.3)  # longest common substring (chars), word overlap, difflib ratio
MIN_SOURCE_LINE = 20  # characters; a shorter sentence is glued to the next one
MIN_WORDS = 3  # a target line with fewer words is boilerplate
STOCK_PHRASE_SHARE = 0.7  # a stock phrase covering more than this share of a line makes it boilerplate
MAX_BOILERPLATE_SHARE = 0.4  # this share of boilerplate lines, or more, fails the clip

TYPES = ("summary", "visual-description", "dynamic-action")
VERDICTS = ("entailment", "contradiction", "underdetermined")
ENTAILED, ACTION = "entailment", "dynamic-action"


class JudgementError(ValueError):
    """A judgement that cannot be scored (the clip is skipped and counted): one line saying why."""


@dataclass(frozen=True)
class Node:
    """One target line as the judge labelled it."""

    number: int
    text: str
    type: str
    evidence: str
    reasoning: str
    verdict: str

    @property
    def entailed_action(self) -> bool:
        return self.type == ACTION and self.verdict == ENTAILED


@dataclass
class Cost:
    cost: float
    max_cost: float
    normalized: float
    targets: int
    sources: int
    entailed_actions: int
    boilerplate: int
    path: list[int] = field(default_factory=list)  # source line of each target node on the best path
    evidence_lines: list[int | None] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- the judge's reply

_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*|\s*```\s*$")
# "Line 3: text", "**Line 3:** text", "Line 3: **A bold header:**" (the header's own asterisks are kept)
_LINE_HEAD = re.compile(r"^[ \t>*_]*Line[ \t]+(\d+)[ \t]*[*_]*[ \t]*:(?:[*_]{1,2}(?=\s|$))?[ \t]*(.*)$", re.MULTILINE)
_FIELD = re.compile(r"^\s*(?:[-*•]\s*)?[*_]*(Type|Evidence|Reasoning|Verdict)[*_]*\s*:[*_]*[ \t]*(.*)$",
                    re.IGNORECASE)
_LABEL_JUNK = "*_`\"'.,;:()[] \t"


def _label(value: str, allowed: tuple[str, ...], what: str, number: int) -> str:
    word = value.strip().strip(_LABEL_JUNK).lower().replace(" ", "-") if what == "type" else \
        value.strip().strip(_LABEL_JUNK).lower()
    if word not in allowed:
        raise JudgementError(f"line {number}: {what} {value.strip()!r} is not one of {'/'.join(allowed)}")
    return word


def _after_empty_evidence(lines: list[str]) -> str:
    """The evidence the official parser reads when the Evidence field is left empty on its line: its pattern
    skips the line break and takes the next non-blank line, usually "- Reasoning: ...", with the lines that
    continue it. Reproduced because it decides an entailed action's evidence line (and so its cost)."""
    taken: list[str] = []
    for raw in lines:
        if not raw.strip():
            continue
        if taken and _FIELD.match(raw):
            break
        taken.append(raw.strip())
    return " ".join(taken)


def parse_judgement(text: str | None) -> list[Node]:
    """The judge's ``Line k: ...`` blocks with their Type / Evidence / Reasoning / Verdict fields, by line number.

    Every block needs a valid type and verdict (else `JudgementError`, as the official run drops such a
    reply); evidence and reasoning may be empty or missing; a field may run over several lines.
    """
    text = _FENCE.sub("", (text or "").strip())
    heads = list(_LINE_HEAD.finditer(text))
    if not heads:
        raise JudgementError("the judge's reply has no 'Line N:' blocks")
    nodes = []
    for k, head in enumerate(heads):
        number = int(head.group(1))
        body = text[head.end():heads[k + 1].start() if k + 1 < len(heads) else len(text)]
        fields: dict[str, list[str]] = {}
        current = None  # the field a wrapped line continues; a blank line ends it
        line_text = [head.group(2).strip()]
        lines = body.splitlines()
        empty_evidence_at = None
        for index, raw in enumerate(lines):
            match = _FIELD.match(raw)
            if match:
                current = match.group(1).lower()
                fields[current] = [match.group(2).strip()]
                if current == "evidence" and not fields[current][0]:
                    empty_evidence_at = index
            elif not raw.strip():
                current = None
            elif current is not None:
                fields[current].append(raw.strip())
            elif not fields:
                line_text.append(raw.strip())  # the hypothesis wrapped onto another line
            # text after a field and a blank line is commentary: ignored
        values = {name: " ".join(v for v in fields.get(name, []) if v).strip() for name in
                  ("type", "evidence", "reasoning", "verdict")}
        if empty_evidence_at is not None:
            values["evidence"] = _after_empty_evidence(lines[empty_evidence_at + 1:])
        if "type" not in fields or "verdict" not in fields:
            missing = "type" if "type" not in fields else "verdict"
            raise JudgementError(f"line {number}: no {missing} field")
        nodes.append(Node(number=number, text=" ".join(t for t in line_text if t).strip(),
                          type=_label(values["type"], TYPES, "type", number),
                          evidence=values["evidence"], reasoning=values["reasoning"],
                          verdict=_label(values["verdict"], VERDICTS, "verdict", number)))
    nodes.sort(key=lambda node: node.number)
    return nodes


# --------------------------------------------------------------------------- the source caption


def split_sentences(text: str) -> list[str]:
    """The source caption as lines: a break after . ! ? when a capital follows, after "; ", at bullets and
    numbered items; blank lines dropped; a line shorter than 20 characters is glued to the one after it."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"([.!?])\s+(?=[A-Z])", "\\1\n", text)
    text = re.sub(r";\s+", ";\n", text)
    text = re.sub(r"(?m)^\s*[-•*]\s+", "\n", text)
    text = re.sub(r"(?m)^\s*\d+[.)]\s+", "\n", text)
    lines, current = [], ""
    for line in (part.strip() for part in text.split("\n")):
        if not line:
            continue
        if current and len(current) < MIN_SOURCE_LINE:
            current = f"{current} {line}"
        else:
            if current:
                lines.append(current)
            current = line
    if current:
        lines.append(current)
    return lines


def _plain(text: str) -> str:
    """Lower case, punctuation (but apostrophes) to spaces, single spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text).lower()).strip()


def evidence_score(evidence: str, line: str) -> float:
    """0.4 x longest common substring (in characters) + 0.3 x share of the evidence's words in the line
    + 0.3 x difflib's similarity ratio, on the plain-text forms (difflib's defaults, as the official code)."""
    a, b = _plain(evidence), _plain(line)
    matcher = difflib.SequenceMatcher(None, a, b)
    longest = matcher.find_longest_match(0, len(a), 0, len(b)).size
    words = set(a.split())
    overlap = len(words & set(b.split())) / len(words) if words else 0
    ratio = matcher.ratio()
    w_lcs, w_overlap, w_ratio = EVIDENCE_WEIGHTS
    return longest * w_lcs + overlap * w_overlap + ratio * w_ratio


def evidence_line(evidence: str, lines: list[str]) -> int | None:
    """The source line the judge's evidence quotes: the best-scoring line (the first on ties) if its score
    reaches the threshold; None for empty evidence or no good match."""
    if not evidence.strip():
        return None
    best, best_score = None, 0.0
    for j, line in enumerate(lines):
        if not _plain(line):
            continue
        score = evidence_score(evidence, line)
        if score > best_score:
            best, best_score = j, score
    return best if best is not None and best_score >= EVIDENCE_THRESHOLD else None


# --------------------------------------------------------------------------- boilerplate target lines

# stock phrases of captioning models that carry no claim about the video (searched in the lower-cased line
# with ':' and ';' removed); a bold Markdown header ("**Setting:**") counts as one too
_STOCK_PHRASES = [re.compile(p) for p in (
    (r"here(?:'s| is) an? (?:(?:detailed|brief|quick) )?description of the (?:video|images?)"
     r"(?:(?: you provided)|(?:,? based on the images provided)|(?:, capturing its key elements))?"),
    r"overall (?:impression|summary|description|analysis)",
    r"visual details",
    r"overall effect",
    r"in summary",
    r"to summarize",
    r"\*\*.*?\*\*\s*:?$",
)]


def is_boilerplate(line: str) -> bool:
    """A target line that says nothing checkable: empty, fewer than 3 words, or mostly a stock phrase."""
    stripped = line.strip()
    if not stripped or len(re.sub(r"\*+", "", stripped).split()) < MIN_WORDS:
        return True
    lowered = re.sub(r"[:;]", "", stripped.lower())
    for phrase in _STOCK_PHRASES:
        match = phrase.search(lowered)
        if match and (match.end() - match.start()) / len(stripped) > STOCK_PHRASE_SHARE:
            return True
    return False


# --------------------------------------------------------------------------- the cost


def _base_cost(node: Node, j: int, evidence: int | None) -> float:
    if node.verdict != ENTAILED:
        return 1.0
    if node.type != ACTION:
        return 0.0
    return 0.0 if j == evidence else 1.0


def dp_cost(nodes: list[Node], evidence: list[int | None], num_sources: int,
            lam: float = LAMBDA) -> tuple[float, list[int]]:
    """(min_j dp[N][j], the best path's source line per node) of the order-penalised matching (module doc)."""
    n, m = len(nodes), num_sources
    if n == 0 or m == 0:
        raise JudgementError(f"nothing to match ({n} target lines, {m} source lines)")
    pays = [node.type == ACTION or node.verdict == ENTAILED for node in nodes]
    eda = [node.entailed_action for node in nodes]
    # penalty for c offending nodes, summed one LAMBDA at a time as the official loop does (same float result)
    steps = [0.0]
    for _ in range(n):
        steps.append(steps[-1] + lam)
    dp = [0.0] * m
    paths: list[tuple[int, ...]] = [()] * m  # source lines of nodes 0..i-2 on the best path ending at (i-1, j)
    for i in range(n):
        base = [_base_cost(nodes[i], j, evidence[i]) for j in range(m)]
        new_dp = [float("inf")] * m
        new_paths: list[tuple[int, ...]] = [()] * m
        for prev in range(m):  # ascending, with a strict '<': the first argmin wins, as in the official loop
            placed = paths[prev] + (prev,) if i else ()
            after = sorted(pos for k, pos in enumerate(placed) if eda[k])
            for j in range(m):
                penalty = steps[len(after) - bisect.bisect_right(after, j)] if pays[i] else 0.0
                total = dp[prev] + base[j] + penalty
                if total < new_dp[j]:
                    new_dp[j] = total
                    new_paths[j] = placed
        dp, paths = new_dp, new_paths
    end = min(range(m), key=lambda j: (dp[j], j))
    return dp[end], list(paths[end]) + [end]


def normaliser(nodes: list[Node], lam: float = LAMBDA) -> float:
    """The official max_cost: every node but the entailed actions made up, plus every pair of those out of order."""
    k = sum(node.entailed_action for node in nodes)
    return (len(nodes) - k) + lam * ((k * (k - 1)) / 2)


def argus_cost(reply: str | None, source_caption: str, lam: float = LAMBDA) -> Cost:
    """ArgusCost of one judgement: parse the reply, replace boilerplate lines by entailed summaries, match
    evidence in the source's sentences, run the DP, normalise. `JudgementError` when it cannot be scored."""
    judged = parse_judgement(reply)
    nodes = [Node(n.number, "header text", n.evidence, "summary", "header text", ENTAILED)
             if is_boilerplate(n.text) else n for n in judged]
    boilerplate = sum(is_boilerplate(n.text) for n in judged)
    if boilerplate / len(judged) >= MAX_BOILERPLATE_SHARE:
        raise JudgementError(f"{boilerplate} of {len(judged)} target lines are boilerplate (40 % or more)")
    lines = split_sentences(source_caption)
    if not lines:
        raise JudgementError("the source caption has no sentences")
    evidence = [evidence_line(node.evidence, lines) for node in nodes]
    cost, path = dp_cost(nodes, evidence, len(lines), lam)
    max_cost = normaliser(nodes, lam)
    if max_cost == 0:
        raise JudgementError(f"the normaliser is 0 ({len(nodes)} target line(s), all entailed actions)")
    k = sum(node.entailed_action for node in nodes)
    return Cost(cost=cost, max_cost=max_cost, normalized=cost / max_cost, targets=len(nodes), sources=len(lines),
                entailed_actions=k, boilerplate=boilerplate, path=path, evidence_lines=evidence)
