"""Visual-token pruning for one video: pure tensor code (no transformers / lmms-eval imports).

    from sinktop_eval.pruning import sink_score, build_pruner, PRUNERS
    prune = build_pruner("holitom", ratio=0.1, mu_s=0.04, mu_t=0.07)
    out = prune(features, attn, keys=keys, grid=(14, 14))   # out.tokens (k, D), out.index (k,)
    stats = sink_statistics(attn, out.index, T, n)           # kept tokens at sink positions, per-position frequency
"""
from .base import PruneOutput, Pruner
from .registry import PRUNERS, build_pruner
from .sink import sink_aware_importance, sink_aware_similarity, sink_score, sink_set
from .sink_stats import sink_statistics, summarise_sink_statistics

__all__ = ["PRUNERS", "PruneOutput", "Pruner", "build_pruner", "sink_score", "sink_set", "sink_aware_importance",
           "sink_aware_similarity", "sink_statistics", "summarise_sink_statistics"]
