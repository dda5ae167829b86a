"""Slow, loop-heavy reference implementations of the pruners, written from
/work/shared/docs/algorithms.md only. Nothing here imports sinktop_eval: the tests compare the package
against these, so an expectation is never computed by the code under test.

Everything is plain Python floats (double precision) over ``tensor.tolist()``; budgets use exact
rational arithmetic (``Fraction(str(r))``) so that e.g. 0.1 * 190 is exactly 19.

Interpretation choices (the ones the package documents, mirrored here):
- every top-k breaks ties towards the lower index;
- density peaks: on equal density the lower index counts as denser; the densest point's delta is the
  largest distance of the whole distance matrix;
- FastVID: for each anchor frame of a segment, every non-salient token of the segment (anchors included)
  joins that frame's most cosine-similar anchor ("of each anchor frame": a token feeds one anchor per
  anchor frame); per-anchor-frame count clamped to the non-salient count;
- HoliTom: C = round-half-even(n_static * r') (as the release's Python round), at least 1 when the
  window has no dynamic position; static tokens stand at (a, i); DP ties keep the earlier
  option; DP and r' use plain similarity, the per-window static test uses sim + mu_t * s.
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import torch

VISIONZIP_TABLE_196 = {"0.1": 20, "0.15": 30, "0.2": 40, "0.25": 50}


# ---------------------------------------------------------------------------------------------- basics
def frac(x) -> Fraction:
    return Fraction(str(x))


def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def norm(u):
    return math.sqrt(sum(a * a for a in u))


def cos(u, v):
    nu, nv = norm(u), norm(v)
    if nu == 0 or nv == 0:
        return 0.0
    return dot(u, v) / (nu * nv)


def dist(u, v):
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v))) / math.sqrt(len(u))


def vmean(vectors):
    m = len(vectors)
    return [sum(v[j] for v in vectors) / m for j in range(len(vectors[0]))]


def vadd(u, v, wu=1.0, wv=1.0):
    return [wu * a + wv * b for a, b in zip(u, v)]


def top_k(values, k):
    """Indices of the k largest values; ties -> lower index. Returned in rank order."""
    return sorted(range(len(values)), key=lambda i: (-values[i], i))[: max(0, k)]


def argmax_first(values):
    best = 0
    for j in range(1, len(values)):
        if values[j] > values[best]:
            best = j
    return best


def argmin_first(values):
    best = 0
    for j in range(1, len(values)):
        if values[j] < values[best]:
            best = j
    return best


# ---------------------------------------------------------------------------------------------- SToP
def sink_ref(attn, gamma=1.1):
    """s_i = minmax_i( (mean_t A[t, i]) ** gamma ), 0 everywhere when max == min."""
    A = attn.double().tolist()
    T, n = len(A), len(A[0])
    means = [sum(A[t][i] for t in range(T)) / T for i in range(n)]
    powered = [max(m, 0.0) ** gamma for m in means]
    lo, hi = min(powered), max(powered)
    if hi == lo:
        return [0.0] * n
    return [(p - lo) / (hi - lo) for p in powered]


def importance_ref(attn, mu_s, gamma):
    A = attn.double().tolist()
    s = sink_ref(attn, gamma) if mu_s else [0.0] * len(A[0])
    return [[A[t][i] - mu_s * s[i] for i in range(len(A[0]))] for t in range(len(A))]


def density_peak_ref(points, k):
    """rho * delta for each point (see module docstring for tie rules)."""
    m = len(points)
    k = max(1, min(k, m))
    d = [[dist(points[i], points[j]) for j in range(m)] for i in range(m)]
    biggest = max(max(row) for row in d)
    rho = []
    for i in range(m):
        nearest = sorted(d[i])[:k]
        rho.append(math.exp(-sum(x * x for x in nearest) / k))
    score = []
    for i in range(m):
        denser = [j for j in range(m) if rho[j] > rho[i] or (rho[j] == rho[i] and j < i)]
        delta = min(d[i][j] for j in denser) if denser else biggest
        score.append(rho[i] * delta)
    return score, d


# ---------------------------------------------------------------------------------------------- VisionZip
def visionzip_budget_ref(ratio, n):
    if n == 196 and str(ratio) in VISIONZIP_TABLE_196:
        S = VISIONZIP_TABLE_196[str(ratio)]
    else:
        S = math.floor(frac(ratio) * n)
    K_d = (S * 54) // 64
    return S, K_d, S - K_d


def visionzip_ref(X, A, K, ratio, mu_s=0.0, gamma=1.1, budget=None, release=False, drop=None):
    """release: the SToP release's slot skipping (release_extras.md); drop: per frame, the set of
    positions hard pruning removed (baselines_extra.md (b): VisionZip runs on the survivors)."""
    T, n, D = X.shape
    S, K_d, K_c = budget if budget is not None else visionzip_budget_ref(ratio, n)
    Xl, Kl = X.double().tolist(), K.double().tolist()
    imp = importance_ref(A, mu_s, gamma)
    sinks = set(top_k(sink_ref(A, gamma), 20)) if release else set()
    tokens, index = [], []
    for t in range(T):
        alive = [i for i in range(n) if drop is None or i not in drop[t]]
        dominant = sorted(alive[j] for j in top_k([imp[t][i] for i in alive], K_d))
        remaining = [i for i in alive if i not in dominant]
        M = len(remaining)
        for i in dominant:
            tokens.append(Xl[t][i])
            index.append(t * n + i)
        if K_c == 0:
            continue
        stride = max(1, M // K_c)
        target_slots = [j * stride for j in range(K_c)]
        if release:  # while a slot number is one of the 20 top sink positions, move it one slot on
            moved = []
            for j in target_slots:
                while j in sinks and j < M:
                    j += 1
                moved.append(min(j, M - 1))
            target_slots = moved
        targets = [remaining[j] for j in target_slots]
        members = [remaining[j] for j in range(M) if j not in target_slots]
        clusters = {c: [] for c in range(K_c)}
        for i in members:
            sims = [cos(Kl[t][i], Kl[t][tg]) for tg in targets]
            clusters[argmax_first(sims)].append(i)
        for c, tg in enumerate(targets):
            tok = list(Xl[t][tg])
            if clusters[c]:
                tok = vadd(tok, vmean([Xl[t][i] for i in clusters[c]]))
            tokens.append(tok)
            index.append(t * n + tg)
    return tokens, index


# ---------------------------------------------------------------------------------------------- FastVID
def dyseg_ref(g, c, tau):
    """g: list of T global vectors -> list of (start, end) inclusive segments."""
    T = len(g)
    sig = [cos(g[t], g[t + 1]) for t in range(T - 1)]
    lowest = sorted(range(T - 1), key=lambda t: (sig[t], t))[: max(0, c - 1)]
    cuts = sorted(set(lowest) | {t for t in range(T - 1) if sig[t] < tau})
    segs, start = [], 0
    for cut in cuts:
        segs.append((start, cut))
        start = cut + 1
    segs.append((start, T - 1))
    return segs


def fastvid_budget_ref(ratio, n, d=0.4):
    R = max(1, math.floor(frac(ratio) * n))
    R_c = math.floor(R * frac(d))
    return R, R - R_c, R_c


def anchor_frames_ref(L, p):
    return [j for j in range(L) if (L - 1 - j) % p == 0]


def fastvid_ref(X, A, ratio, mu_s=0.0, gamma=1.1, frame_features=None, c=8, tau_seg=0.9, d=0.4, p=4,
                beta=0.6, k=4, release=False, drop=None):
    """release (only when mu_s != 0): anchors by rho*delta - 0.3 s in one-frame segments and
    rho*delta - 0.6 s in longer ones (the release subtracts 0.3 s twice there); drop: per frame, the
    positions hard pruning removed (neither salient, nor anchors, nor merged)."""
    T, n, D = X.shape
    Xl = X.double().tolist()
    if frame_features is not None:
        g = frame_features.double().tolist()
    else:
        g = [vmean(Xl[t]) for t in range(T)]
    segs = dyseg_ref(g, c, tau_seg)
    R, R_s, R_c = fastvid_budget_ref(ratio, n, d)
    imp = importance_ref(A, mu_s, gamma)
    alive = [[i for i in range(n) if drop is None or i not in drop[t]] for t in range(T)]
    salient = [sorted(alive[t][j] for j in top_k([imp[t][i] for i in alive[t]], R_s)) for t in range(T)]
    nonsal = [[i for i in alive[t] if i not in salient[t]] for t in range(T)]
    m = len(nonsal[0])
    s_video = sink_ref(A, gamma) if (release and mu_s) else None
    out = {}
    for t in range(T):
        for i in salient[t]:
            out[t * n + i] = Xl[t][i]
    anchors_info = []
    if R_c > 0 and m > 0:
        for start, end in segs:
            L = end - start + 1
            frames = [start + j for j in anchor_frames_ref(L, p)]
            count = min(m, (R_c * L) // math.ceil(L / p))
            anchors = []  # (t, i), frames ascending, raster within a frame
            for t in frames:
                pts = [Xl[t][i] for i in nonsal[t]]
                score, _ = density_peak_ref(pts, k)
                if s_video is not None:
                    penalty = 0.3 if L == 1 else 0.6
                    score = [score[j] - penalty * s_video[nonsal[t][j]] for j in range(len(score))]
                chosen = sorted(top_k(score, count))
                anchors += [(t, nonsal[t][j]) for j in chosen]
            anchors_info.append({"segment": (start, end), "frames": frames, "count": count,
                                 "anchors": [t * n + i for t, i in anchors]})
            # per anchor frame: every non-salient token of the segment joins that frame's most similar anchor
            for t_anchor in frames:
                own = [(at, ai) for at, ai in anchors if at == t_anchor]
                groups = {a: [] for a in range(len(own))}
                for t in range(start, end + 1):
                    for i in nonsal[t]:
                        sims = [cos(Xl[t][i], Xl[at][ai]) for at, ai in own]
                        groups[argmax_first(sims)].append(Xl[t][i])
                for a, (at, ai) in enumerate(own):
                    anchor = Xl[at][ai]
                    mem = groups[a]
                    if mem:
                        w = max(1.0 / (len(mem) + 1), beta)
                        anchor = vadd(anchor, vmean(mem), w, 1 - w)
                    out[at * n + ai] = anchor
    index = sorted(out)
    return [out[j] for j in index], index, {"segments": [e - s + 1 for s, e in segs], "anchors": anchors_info,
                                            "salient": salient}


# ---------------------------------------------------------------------------------------------- HoliTom
def same_position_similarity(X):
    T, n, _ = X.shape
    Xl = X.double().tolist()
    return [[cos(Xl[t][i], Xl[t + 1][i]) for i in range(n)] for t in range(T - 1)]


def savings_ref(static):
    """static[t][i] (T-1 x n bools) -> function P(a, b)."""
    n = len(static[0]) if static else 0

    def P(a, b):
        if b <= a:
            return 0
        count = sum(1 for i in range(n) if all(static[t][i] for t in range(a, b)))
        return count * (b - a)

    return P


def dp_ref(T, P, W=1024):
    """The spec's recurrence, ties -> the earlier option. Returns (windows, R_tot)."""
    dp = {-1: 0}
    choice = {}
    for i in range(T):
        dp[i], choice[i] = dp[i - 1], 1
        for w in range(2, min(i + 1, W) + 1):
            v = dp[i - w] + P(i - w + 1, i)
            if v > dp[i]:
                dp[i], choice[i] = v, w
    windows, end = [], T - 1
    while end >= 0:
        w = choice[end]
        windows.append((end - w + 1, end))
        end -= w
    return windows[::-1], dp[T - 1]


def all_partitions(T):
    """Every partition of 0..T-1 into contiguous windows (2^(T-1) of them)."""
    for cuts in itertools.product([False, True], repeat=T - 1):
        windows, start = [], 0
        for t, cut in enumerate(cuts):
            if cut:
                windows.append((start, t))
                start = t + 1
        windows.append((start, T - 1))
        yield windows


def brute_force_windows(T, P, W=1024):
    best = None
    for windows in all_partitions(T):
        if any(b - a + 1 > W for a, b in windows):
            continue
        value = sum(P(a, b) for a, b in windows)
        if best is None or value > best:
            best = value
    return best


def cluster_static_ref(merged, C, k=7, beta=0.6, penalty=None):
    """Density-peak centres among merged static tokens -> list of (row, token), rows ascending.
    penalty: per row, subtracted from rho*delta before choosing centres (release variant: 0.3 s)."""
    m = len(merged)
    if C <= 0:
        return []
    if C >= m:
        return [(j, merged[j]) for j in range(m)]
    score, d = density_peak_ref(merged, min(k, C))
    if penalty is not None:
        score = [score[j] - penalty[j] for j in range(m)]
    centres = sorted(top_k(score, C))
    groups = {c: [] for c in centres}
    for j in range(m):
        if j in centres:
            continue
        groups[centres[argmin_first([d[j][c] for c in centres])]].append(merged[j])
    out = []
    for c in centres:
        tok = merged[c]
        if groups[c]:
            tok = vadd(tok, vmean(groups[c]), beta, 1 - beta)
        out.append((c, tok))
    return out


def holitom_ref(X, A, ratio, mu_s=0.0, mu_t=0.0, gamma=1.1, tau=0.8, beta=0.6, k=7, W=1024, release=False,
                drop=None):
    """release: static centres by rho*delta - 0.3 s (always on); drop: per frame, positions hard pruning
    removed: never kept, and a position dropped in any frame of a window is not static there."""
    T, n, D = X.shape
    N = T * n
    Xl = X.double().tolist()
    sim = same_position_similarity(X)
    plain = [[sim[t][i] > tau for i in range(n)] for t in range(T - 1)]
    windows, R_tot = dp_ref(T, savings_ref(plain), W)
    r_prime = min(frac(ratio) * N / (N - R_tot), Fraction(1))
    s = sink_ref(A, gamma) if (mu_s or mu_t or release) else [0.0] * n
    gone = drop if drop is not None else [set() for _ in range(T)]
    sttp = [[sim[t][i] + mu_t * s[i] > tau for i in range(n)] for t in range(T - 1)]
    imp = importance_ref(A, mu_s, gamma)
    tokens, index, per_window = [], [], []
    for a, b in windows:
        if b > a:
            static = [i for i in range(n) if all(sttp[t][i] for t in range(a, b))
                      and not any(i in gone[t] for t in range(a, b + 1))]
        else:
            static = []
        dynamic = [i for i in range(n) if i not in static]
        C = round(len(static) * r_prime)  # Fraction: exact, half to even
        if C == 0 and not dynamic and static:
            C = 1  # a window never keeps nothing
        merged = [vmean([Xl[t][i] for t in range(a, b + 1)]) for i in static]
        penalty = [0.3 * s[i] for i in static] if release else None
        for row, tok in cluster_static_ref(merged, C, k, beta, penalty):
            tokens.append(tok)
            index.append(a * n + static[row])
        keep = math.ceil(len(dynamic) * r_prime)
        for t in range(a, b + 1):
            pool = [i for i in dynamic if i not in gone[t]]
            chosen = sorted(pool[j] for j in top_k([imp[t][i] for i in pool], keep))
            for i in chosen:
                tokens.append(Xl[t][i])
                index.append(t * n + i)
        per_window.append({"window": (a, b), "static": static, "C": C, "keep_per_frame": keep})
    return tokens, index, {"windows": windows, "saved": R_tot, "r_prime": r_prime, "per_window": per_window,
                           "static_positions": sum(len(w["static"]) for w in per_window)}


# ---------------------------------------------------------------------------------------------- helpers
def as_tensor(tokens, D):
    if not tokens:
        return torch.zeros(0, D, dtype=torch.float64)
    return torch.tensor(tokens, dtype=torch.float64)


def assert_matches(out, ref_tokens, ref_index, atol=1e-6, rtol=1e-6):
    """Index exactly equal, tokens allclose (float32 under test vs float64 reference)."""
    got_index = out.index.tolist()
    assert got_index == list(ref_index), f"index differs:\n got {got_index}\nwant {list(ref_index)}"
    D = out.tokens.shape[1]
    want = as_tensor(ref_tokens, D)
    got = out.tokens.double()
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=atol, rtol=rtol), f"max |diff| = {(got - want).abs().max().item()}"


def random_inputs(T, n, D=8, dk=6, seed=0, static_frac=0.0, noise=0.05):
    """Random (X, A, K); a ``static_frac`` share of positions barely changes over time (cos ~ 1)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(T, n, D, generator=g)
    n_static = int(round(static_frac * n))
    if n_static:
        base = torch.randn(1, n_static, D, generator=g) * 2
        X[:, :n_static] = base + noise * torch.randn(T, n_static, D, generator=g)
    A = torch.rand(T, n, generator=g)
    A = A / A.sum(dim=1, keepdim=True)
    K = torch.randn(T, n, dk, generator=g)
    return X, A, K


def sign_flip_video(pattern, D=4, seed=0):
    """Features whose same-position similarity is exactly +1 (pattern[t][i] True) or -1 (False)."""
    T1, n = len(pattern), len(pattern[0])
    g = torch.Generator().manual_seed(seed)
    X = torch.empty(T1 + 1, n, D)
    X[0] = torch.randn(n, D, generator=g)
    for t in range(T1):
        for i in range(n):
            X[t + 1, i] = X[t, i] if pattern[t][i] else -X[t, i]
    return X


# ---------------------------------------------------------------------------------------------- sink handling
def hard_drop_ref(A, k, unit="token"):
    """Per frame, the set of positions hard pruning removes: the ceil(k n) largest A[t, i] ("token") or
    the ceil(k n) largest mean_t A[t, i] in every frame ("position"); ties -> lower index."""
    Al = A.double().tolist()
    T, n = len(Al), len(Al[0])
    count = math.ceil(frac(k) * n)
    if unit == "position":
        means = [sum(Al[t][i] for t in range(T)) / T for i in range(n)]
        return [set(top_k(means, count)) for _ in range(T)]
    return [set(top_k(Al[t], count)) for t in range(T)]


def redistribute_ref(A, zone, p=0.6):
    """A'[t, i] = (1-p) A[t, i] on the sink set, A[t, i] + p m_Z A[t, i] / m_N elsewhere (rows keep their sum)."""
    Al = A.double().tolist()
    out = []
    for row in Al:
        m_z = sum(v for i, v in enumerate(row) if i in zone)
        m_n = sum(v for i, v in enumerate(row) if i not in zone)
        n_off = len(row) - len(zone)
        out.append([(1 - p) * v if i in zone else (v + p * m_z * v / m_n if m_n > 0 else v + p * m_z / n_off)
                    for i, v in enumerate(row)])
    return torch.tensor(out, dtype=torch.float64)


def sink_set_ref(sink, top=0.1):
    n = len(sink)
    return {i for i in top_k(sink, math.ceil(frac(top) * n)) if sink[i] > 0}


# ---------------------------------------------------------------------------------------------- FlashVID
# Written from shared/docs/specs/flashvid.md (SToP's port: no LLM stage). Tie rules as above: top-k and
# argmax/argmin to the lower index; DPC density ties: the lower index is denser; DPC centres listed by
# score rank and members join the first nearest centre in that order.
def flashvid_budget_ref(ratio, n, expansion=1.25, alpha=0.7):
    B = max(1, min(n, math.ceil(frac(ratio) * n * frac(expansion))))
    K_a = math.ceil(B * frac(alpha))
    return B, K_a, B - K_a


def flashvid_dyseg_ref(means, tau=0.9, c_min=8):
    """means: T frame-mean vectors -> segment lengths."""
    T = len(means)
    sig = [cos(means[t], means[t + 1]) for t in range(T - 1)]
    cuts = {t for t in range(T - 1) if sig[t] < tau}
    if len(cuts) + 1 < c_min and T > 1:
        rest = [1.0 if t in cuts else sig[t] for t in range(T - 1)]
        need = min(c_min - len(cuts) - 1, T - 1)
        cuts |= set(sorted(range(T - 1), key=lambda t: (rest[t], t))[:need])
    bounds = [-1] + sorted(cuts) + [T - 1]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:])]


def adts_ref(tokens, a_hat, g, count, mask_picked=False):
    """One frame: tokens (m vectors), a_hat (m), g (segment mean token) -> sorted picks (may repeat)."""
    m = len(tokens)
    scale = [1e6 * a_hat[j] * dot(tokens[j], g) for j in range(m)]
    M = [[(1 - cos(tokens[i], tokens[j]) if i != j else 0.0) * scale[j] for j in range(m)] for i in range(m)]
    if m >= 2:
        nn = [sorted(M[i][j] for i in range(m))[1] for j in range(m)]
    else:
        nn = [M[0][0]]
    picks = [argmax_first(nn)]
    for _ in range(1, count):
        score = [min(M[s][j] for s in picks) for j in range(m)]
        if mask_picked:
            score = [-math.inf if j in picks else score[j] for j in range(m)]
        picks.append(argmax_first(score))
    return sorted(picks)


def tstm_ref(seg, selected, tau, lower_bound, true_mean=False):
    """seg[t][i] vectors (L frames), selected[t] sets -> per frame {i: value} of roots (ADTS ones included)."""
    L, m = len(seg), len(seg[0])
    sigma = [[-1.0] * m]
    parent = [[None] * m]
    for t in range(1, L):
        row_s, row_p = [], []
        for i in range(m):
            sims = [-1.0 if (i in selected[t] or j in selected[t - 1]) else cos(seg[t][i], seg[t - 1][j])
                    for j in range(m)]
            j = argmax_first(sims)
            row_s.append(sims[j])
            row_p.append(j)
        sigma.append(row_s)
        parent.append(row_p)
    theta = tau
    if sum(1 for t in range(L) for i in range(m) if not sigma[t][i] > tau) < lower_bound:
        merges = L * m - lower_bound
        flat = sorted((sigma[t][i] for t in range(L) for i in range(m)), reverse=True)
        theta = max(flat[merges - 1], -1 + 1e-6) if merges > 0 else math.inf
    linked = [[sigma[t][i] > theta for i in range(m)] for t in range(L)]
    total = [[list(seg[t][i]) for i in range(m)] for t in range(L)]
    count = [[1] * m for _ in range(L)]
    roots = [{} for _ in range(L)]
    for t in range(L - 1, -1, -1):
        for i in range(m):
            if not linked[t][i]:
                roots[t][i] = [v / count[t][i] for v in total[t][i]]
            else:
                p = parent[t][i]
                total[t - 1][p] = vadd(total[t - 1][p], total[t][i])
                count[t - 1][p] += count[t][i] if true_mean else 1
    return roots


def flashvid_dpc_ref(points, C, k=7):
    """-> list of (centre row, merged value): centres by score rank, plain means."""
    score, d = density_peak_ref(points, min(k, C))
    centres = top_k(score, C)
    groups = {c: [] for c in centres}
    for j in range(len(points)):
        if j in centres:
            groups[j].append(points[j])
        else:
            groups[centres[argmin_first([d[j][c] for c in centres])]].append(points[j])
    return [(c, vmean(groups[c])) for c in centres]


def flashvid_ref(X, A, ratio, mu_s=0.0, gamma=1.1, expansion=1.25, alpha=0.7, tau_seg=0.9, c_min=8, tau_t=0.8,
                 k=7, sink_scope="segment", mask_picked=False, true_mean=False):
    T, n, D = X.shape
    Xl = X.double().tolist()
    Al = A.double().tolist()
    B, K_a, K_m = flashvid_budget_ref(ratio, n, expansion, alpha)
    segs = flashvid_dyseg_ref([vmean(Xl[t]) for t in range(T)], tau_seg, c_min)
    adts_out, merged_out = [], []  # (flat index, value)
    start = 0
    for L in segs:
        frames = list(range(start, start + L))
        g = vmean([Xl[t][i] for t in frames for i in range(n)])
        if mu_s:
            s = sink_ref(A if sink_scope == "video" else A[start:start + L], gamma)
        picks = {}
        for t in frames:
            a_hat = [Al[t][i] - (mu_s * s[i] if mu_s else 0.0) for i in range(n)]
            picks[t] = adts_ref(Xl[t], a_hat, g, K_a, mask_picked)
            adts_out += [(t * n + i, Xl[t][i]) for i in picks[t]]
        if K_m > 0 and tau_t < 1:
            if L == 1:
                cand = {start: {i: Xl[start][i] for i in range(n)}}
            else:
                roots = tstm_ref([Xl[t] for t in frames], [set(picks[t]) for t in frames], tau_t, B * L, true_mean)
                cand = {t: {i: v for i, v in roots[t - start].items() if i not in picks[t]} for t in frames}
            total = sum(len(c) for c in cand.values())
            budget = K_m * L
            for t in frames:
                rows = sorted(cand[t])
                if budget >= total:
                    merged_out += [(t * n + i, cand[t][i]) for i in rows]
                    continue
                C = math.ceil(Fraction(len(rows) * budget, total))
                if C == 0:
                    continue
                for c, value in flashvid_dpc_ref([cand[t][i] for i in rows], C, k):
                    merged_out.append((t * n + rows[c], value))
        start += L
    both = adts_out + merged_out
    order = sorted(range(len(both)), key=lambda j: (both[j][0], j))  # stable: ADTS before merged
    return [both[j][1] for j in order], [both[j][0] for j in order], {"segments": segs, "B": B, "K_a": K_a, "K_m": K_m}


# ---------------------------------------------------------------------------------------------- PruneVid
# Written from shared/docs/specs/prunevid.md (SToP's port, stage 1). DPC as above; clusters listed by
# centre score rank, plain means; a set is clustered only when it has more than 14 tokens.
def refine_ref(labels):
    """Section 3.1 step 2, literally: keep each label's longest run(s), release the rest (all of it when
    the longest run is one frame), then give each released run its longer neighbour's label (ties left)."""
    N = len(labels)
    runs = []  # (label, first, last)
    for i, lab in enumerate(labels):
        if runs and runs[-1][0] == lab and runs[-1][2] == i - 1:
            runs[-1] = (lab, runs[-1][1], i)
        else:
            runs.append((lab, i, i))
    out = list(labels)
    for lab in set(labels):
        mine = [(a, b) for l_, a, b in runs if l_ == lab]
        best = max(b - a + 1 for a, b in mine)
        for a, b in mine:
            if best == 1 or b - a + 1 < best:
                for i in range(a, b + 1):
                    out[i] = -1
    i = 0
    while i < N:
        if out[i] != -1:
            i += 1
            continue
        j = i
        while j + 1 < N and out[j + 1] == -1:
            j += 1
        left_len = right_len = 0
        left = right = None
        if i > 0:
            left = out[i - 1]
            left_len = sum(1 for _ in itertools.takewhile(lambda v: v == left, reversed(out[:i])))
        if j < N - 1:
            right = out[j + 1]
            right_len = sum(1 for _ in itertools.takewhile(lambda v: v == right, out[j + 1:]))
        if right_len > left_len or (left is None and right is not None):
            new = right
        else:
            new = left
        new = 0 if new is None else new
        for q in range(i, j + 1):
            out[q] = new
        i = j + 1
    return out


def prunevid_cluster_ref(points, C, k=7):
    """-> [(centre row, plain mean)] in centre rank order; the kNN size is k itself (not min(k, C))."""
    score, d = density_peak_ref(points, k)
    centres = top_k(score, C)
    groups = {c: [points[c]] for c in centres}
    for j in range(len(points)):
        if j not in centres:
            groups[centres[argmin_first([d[j][c] for c in centres])]].append(points[j])
    return [(c, vmean(groups[c])) for c in centres]


def prunevid_ref(X, ratio, temporal_ratio=0.25, tau=0.8, k=7, min_size=14, slack=0.005):
    T, n, D = X.shape
    Xl = X.double().tolist()
    means = [vmean(Xl[t]) for t in range(T)]
    C_T = max(1, min(T, math.floor(frac(temporal_ratio) * T)))
    score, d = density_peak_ref(means, k)
    centres = top_k(score, C_T)
    labels = [centres.index(t) if t in centres else argmin_first([d[t][c] for c in centres]) for t in range(T)]
    labels = refine_ref(labels)
    windows, start = [], 0
    for t in range(1, T + 1):
        if t == T or labels[t] != labels[start]:
            windows.append((start, t - 1))
            start = t
    tokens, index, statics = [], [], []
    for a, b in windows:
        w = b - a + 1
        if w >= 2:
            pi = [sum(cos(Xl[p][i], Xl[q][i]) for p in range(a, b + 1) for q in range(a, b + 1) if p != q) / (w * (w - 1))
                  for i in range(n)]
            static = [i for i in range(n) if pi[i] > tau]
        else:
            static = []
        statics.append(len(static))
        rho = min(frac(ratio) * n * w / (len(static) + (n - len(static)) * w) + frac(slack), Fraction(1))
        dynamic = [i for i in range(n) if i not in static]
        sets = [(a, static, [vmean([Xl[t][i] for t in range(a, b + 1)]) for i in static])]
        sets += [(t, dynamic, [Xl[t][i] for i in dynamic]) for t in range(a, b + 1)]
        for t, rows, pts in sets:
            if len(rows) > min_size:
                C = max(1, math.floor(len(rows) * rho))
                for c, value in prunevid_cluster_ref(pts, C, k):
                    tokens.append(value)
                    index.append(t * n + rows[c])
            else:
                tokens += pts
                index += [t * n + i for i in rows]
    return tokens, index, {"windows": windows, "static_positions": statics}


# ---------------------------------------------------------------------------------------------- DPC-kNN baseline
def dpc_knn_ref(X, ratio, k=7, beta=0.6, merge="beta"):
    """baselines_extra.md (a): per frame, C = VisionZip's budget S; centres = top-C rho*delta with
    k = min(k, C), by position; members join the first nearest centre; beta or plain-mean merge."""
    T, n, D = X.shape
    Xl = X.double().tolist()
    C = visionzip_budget_ref(ratio, n)[0]
    tokens, index = [], []
    for t in range(T):
        score, d = density_peak_ref(Xl[t], min(k, C))
        centres = sorted(top_k(score, C))
        groups = {c: [] for c in centres}
        for j in range(n):
            if j not in centres:
                groups[centres[argmin_first([d[j][c] for c in centres])]].append(Xl[t][j])
        for c in centres:
            if merge == "mean":
                tok = vmean([Xl[t][c]] + groups[c])
            else:
                tok = vadd(Xl[t][c], vmean(groups[c]), beta, 1 - beta) if groups[c] else Xl[t][c]
            tokens.append(tok)
            index.append(t * n + c)
    return tokens, index
