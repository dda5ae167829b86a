"""Reading a model's reply to a multiple-choice or a yes/no question.

Shared by the EventHallusion, VideoComp and synthetic MCQ tasks. Pure functions, no I/O.

Multiple choice (`parse_choice`) accepts a letter or the text of an option, tried from the most to
the least explicit form of an answer:

1. the whole reply is a letter: "B", "b.", "(b)", "[C]", "Option B", "Answer: C."
2. a marker followed by a letter: "The best answer is D", "Answer: (c) ...", "Best option:(B)"
3. a leading letter with a delimiter: "(b) a dog", "B) a dog", "B. a dog", "b: a dog"
4. the text of exactly one option: "a dog", "It is a dog." (longest option wins when one contains another)
5. one stand-alone letter anywhere: "I think B", "Probably C, since ..."

Negation and self-correction: before those steps, a letter the reply rules out is set aside: one
preceded by a negation ("not A", "isn't (B)", "never option C", "not the answer A") or followed by a
verdict against it ("A is wrong", "B is incorrect", "C is not correct"); likewise an option text preceded
by a negation ("not a dog"). The steps then read what remains: "The answer is not A." names nothing
(``None``); "Option A is wrong; B" and "B, not A" give B.

A reply that names no option, or names two different ones, gives ``None`` (scored wrong, never an
error). Stand-alone letters that read as English words are not taken for options: the article in
"A man walks" or "a dog", the pronoun in "I think B". Upper-case "A" still counts when a verb follows
("A is correct") or when it stands alone. An article is dropped from option texts and replies only
before another word, so an option whose text is "A" is matched by "The letter shown is A.".

Yes/no (`normalize_yes_no`): the reply's first run of letters, lower-cased, after Markdown and leading
punctuation ("Yes." -> "yes", "**No**, ..." -> "no", "yes—definitely" -> "yes", "Nope" -> "nope").
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence

LETTERS = string.ascii_uppercase
_MARKDOWN = re.compile(r"[*_`#]+")
_SPACES = re.compile(r"\s+")
_ARTICLES = re.compile(r"(?<= )(?:a|an|the) (?=\w)")  # an article before a word ("a dog"), not "is a"
# "A. text", "(A) text", "A) text", "A: text" at the start of an option string (Video-MME style)
_OPTION_PREFIX = re.compile(r"^\s*[\(\[]?([A-Za-z])[\)\]\.:]\s*")
# a letter that is an answer on its own: optional brackets, optional trailing punctuation
_WHOLE_LETTER = re.compile(r"^(?:(?:the\s+)?(?:best\s+|correct\s+|final\s+)?(?:answer|option|choice)\s*(?:is)?\s*[:\-]?\s*)?"
                           r"[\(\[]?([A-Za-z])[\)\]]?\s*[.,:;!]?$", re.IGNORECASE)
# "answer is D", "answer: (c)", "option B", "best option:(B"
_MARKER = re.compile(r"\b(?:answer|option|choice)s?\b\s*(?:is|would\s+be|should\s+be|=)?\s*[:\-]?\s*(?:option\s+)?"
                     r"([\(\[])?([A-Za-z])(?![A-Za-z'])([\)\]])?", re.IGNORECASE)
# "(b) ...", "B) ...", "B. ...", "b: ..." at the start of the reply
_LEADING = re.compile(r"^[\(\[]([A-Za-z])[\)\]]|^([A-Za-z])[\)\]:](?!\S)|^([A-Za-z])\.(?=\s|$)")
# a stand-alone letter token; punctuation after it must not continue a word ("e.g.")
_TOKEN = re.compile(r"(?<![A-Za-z0-9'’\-])([\(\[])?([A-Za-z])([\)\]])?(?![A-Za-z0-9'’\-])(?![.:][A-Za-z])")
# after an upper-case "A", these words mean the letter is the subject ("A is correct"), not an article
# a letter ruled out: a negation before it, or a verdict against it after it
_NEGATED_BEFORE = re.compile(r"(?:\b(?:not|never|no)|n['’]t)\s+(?:(?:the\s+)?(?:answer|option|choice)\s+)?$",
                             re.IGNORECASE)
_NEGATED_AFTER = re.compile(r"^\s*(?:(?:is|was|seems|looks|would\s+be)\s+)?(?:wrong|incorrect|false|"
                            r"not\s+(?:correct|right|true|it\b|the\s+(?:answer|correct|right)))", re.IGNORECASE)
_NEGATION_WORDS = {"not", "never", "no", "isn", "aren", "wasn", "doesn", "don"}  # the last word before a negated text
_VERBS_AFTER_LETTER = {"is", "was", "seems", "looks", "would", "should", "could", "might", "must", "matches",
                       "fits", "describes", "best", "correctly", "appears", "answers", "and", "or"}


def _clean(text: str) -> str:
    return _SPACES.sub(" ", _MARKDOWN.sub("", str(text or ""))).strip()


def _norm_text(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces (for comparing option texts)."""
    text = _clean(text).lower()
    text = re.sub(r"[^\w\s>\-]", " ", text)
    text = _ARTICLES.sub("", f" {text} ")  # "a dog" and "the dog" say the same option
    return _SPACES.sub(" ", text).strip()


def strip_option_prefix(option: str) -> str:
    """'A. 3 apples' -> '3 apples'; text without a letter prefix is returned unchanged (trimmed)."""
    option = str(option).strip()
    match = _OPTION_PREFIX.match(option)
    if match and len(option) > match.end():
        return option[match.end():].strip()
    return option


def _option_map(options: Sequence[str] | Mapping[str, str] | None, letters: str | None) -> dict[str, str]:
    if options is None:
        return {letter: "" for letter in (letters or "ABCDE").upper()}
    if isinstance(options, Mapping):
        return {str(k).strip().upper(): strip_option_prefix(v) for k, v in options.items()}
    return {LETTERS[i]: strip_option_prefix(o) for i, o in enumerate(options)}


def _affirmed(text: str, said: str) -> bool:
    """Whether ``said`` (normalised) mentions ``text`` at least once without a negation right before it."""
    padded, needle, start = f" {said} ", f" {text} ", 0
    while (at := padded.find(needle, start)) >= 0:
        before = padded[:at].split()
        if not before or before[-1] not in _NEGATION_WORDS:
            return True
        start = at + 1
    return False


def _by_text(reply: str, options: dict[str, str]) -> str | None:
    """The letter whose option text the reply is, or the only option text the reply affirms."""
    said = _norm_text(reply)
    texts = {letter: _norm_text(text) for letter, text in options.items() if _norm_text(text)}
    if not said or not texts:
        return None
    exact = [letter for letter, text in texts.items() if text == said]
    if len(exact) == 1:
        return exact[0]
    found = {letter: text for letter, text in texts.items() if _affirmed(text, said)}
    # drop options contained in a longer option that is also found ("dog" inside "a dog running")
    found = {letter: text for letter, text in found.items()
             if not any(text != other and f" {text} " in f" {other} " for other in found.values())}
    distinct = set(found.values())
    if len(distinct) == 1:
        candidates = [letter for letter, text in found.items()]
        return candidates[0] if len(candidates) == 1 else None
    return None


def _reads_as_letter(text: str, end: int, raw: str, bracketed: bool) -> bool:
    """Whether a one-letter token ending at ``text[end]`` is an option letter rather than a word.

    Brackets always make a letter. The article ("a dog", "A man walks") and the pronoun ("I think")
    are words; "A" followed by a verb ("A is correct"), a capital or nothing is a letter.
    """
    if bracketed:
        return True
    word = re.match(r"\s+([A-Za-z'’]+)", text[end:])
    if raw in ("a", "i", "I"):
        return word is None  # "the answer is a." is a letter; "a dog", "I think" are words
    if raw == "A":
        return word is None or word.group(1).lower() in _VERBS_AFTER_LETTER or not word.group(1)[0].islower()
    return True


def _without_negated_letters(text: str) -> str:
    """The reply with every letter it rules out ("not A", "A is wrong") blanked."""
    spans = [m.span() for m in _TOKEN.finditer(text)
             if _reads_as_letter(text, m.end(), m.group(2), bool(m.group(1) or m.group(3)))
             and (_NEGATED_BEFORE.search(text[:m.start()]) or _NEGATED_AFTER.match(text[m.end():]))]
    for start, end in reversed(spans):
        text = f"{text[:start]} {text[end:]}"
    return text.strip()


def parse_choice(reply: str, options: Sequence[str] | Mapping[str, str] | None = None,
                 letters: str | None = None) -> str | None:
    """The option letter (upper case) a reply chooses, or None when it names none or several.

    ``options``: the option texts in letter order (a list; "A. text" prefixes are stripped) or a
    ``{letter: text}`` mapping. Without options, ``letters`` (default "ABCDE") are the valid letters
    and only letter forms are recognised.
    """
    option_map = _option_map(options, letters)
    text = _without_negated_letters(_clean(reply))
    if not text:
        return None

    def ok(letter: str | None) -> str | None:
        return letter.upper() if letter and letter.upper() in option_map else None

    # 1. the whole reply is a letter ("B", "b.", "(b)", "Option B", "Answer: C.")
    match = _WHOLE_LETTER.match(text)
    if match and ok(match.group(1)):
        return ok(match.group(1))
    # 2. a marker and a letter ("The best answer is D", "Answer: (c) a cat", "Best option:(B")
    for match in _MARKER.finditer(text):
        raw, bracketed = match.group(2), bool(match.group(1) or match.group(3))
        if ok(raw) and _reads_as_letter(text, match.end(), raw, bracketed):
            return ok(raw)
    # 3. a leading letter with a delimiter ("(b) a dog", "B) a dog", "B. a dog")
    match = _LEADING.match(text)
    if match and ok(next(g for g in match.groups() if g)):
        return ok(next(g for g in match.groups() if g))
    # 4. the text of exactly one option ("a dog")
    letter = _by_text(text, {k: v for k, v in option_map.items() if v})
    if letter:
        return letter
    # 5. exactly one stand-alone letter anywhere ("I think B")
    seen = {m.group(2).upper() for m in _TOKEN.finditer(text)
            if ok(m.group(2)) and _reads_as_letter(text, m.end(), m.group(2), bool(m.group(1) or m.group(3)))}
    return seen.pop() if len(seen) == 1 else None


def answer_letter(answer: str, options: Sequence[str] | Mapping[str, str] | None = None) -> str | None:
    """A ground-truth label as a letter: "B", "(B)", "b." or an option's text -> "B"."""
    option_map = _option_map(options, None)
    text = _clean(answer).strip("()[] .:")
    if len(text) == 1 and text.upper() in option_map:
        return text.upper()
    return _by_text(answer, {k: v for k, v in option_map.items() if v}) if options is not None else None


def choice_correct(reply: str, answer: str, options: Sequence[str] | Mapping[str, str] | None = None,
                   letters: str | None = None) -> bool:
    """True when the reply picks the answer's option (``answer``: a letter or an option's text)."""
    truth = answer_letter(answer, options) if options is not None else _clean(answer).strip("()[] .:").upper()
    picked = parse_choice(reply, options, letters)
    return truth is not None and picked == truth


def normalize_yes_no(reply: str) -> str:
    """The reply's first run of letters, lower-cased ("Yes." -> "yes", "yes—definitely" -> "yes")."""
    match = re.match(r"[^\w]*([^\W\d_]*)", _clean(reply))
    return match.group(1).lower() if match else ""


def parse_yes_no(reply: str) -> str | None:
    """"yes" / "no" when the reply starts with one of them, else None."""
    word = normalize_yes_no(reply)
    return word if word in ("yes", "no") else None


def yes_no_correct(reply: str, answer: str) -> bool:
    """EventHallusion's binary score: the reply's first word equals the answer ("Yes." / "No.")."""
    truth = normalize_yes_no(answer)
    return truth in ("yes", "no") and parse_yes_no(reply) == truth
