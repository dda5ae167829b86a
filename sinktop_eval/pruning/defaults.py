"""SToP's published settings: (mu_s, mu_t) per base pruner and backbone family, and the stop modes.

Values from the SToP paper (tuned on LLaVA-OneVision at r = 0.1; FlashVID's from its Table 6 /
flashvid.md). For Qwen2.5-VL no trustworthy values exist yet (the published 3.7 belongs to a different
importance signal), so Qwen runs reuse the LLaVA-OV values and every results row records where its mu's
came from (``mu_source``).

Stop modes: "off", "on" (STSP + STTP at the paper's mu's), "stsp", "sttp" (ablations), and the two
naive sink-handling alternatives of the paper's Fig. 7, "hard" and "redistribute" (``sink_alternatives``),
which use no SToP term. SToP, hard and redistribute therefore compare in one sweep over ``stop``.
"""
from __future__ import annotations

from typing import Any

from .base import HARD_K, REDISTRIBUTE_P, REDISTRIBUTE_TOP
from .registry import PRUNERS

PAPER_MU: dict[str, tuple[float, float]] = {
    "visionzip": (0.03, 0.0),
    "fastvid": (0.02, 0.0),
    "holitom": (0.04, 0.07),
    "flashvid": (0.02, 0.0),
}
CALIBRATED_FAMILIES = ("llava_ov",)

# stop mode -> which SToP terms are active (STSP, STTP)
STOP_MODES: dict[str, tuple[bool, bool]] = {
    "off": (False, False),
    "on": (True, True),
    "stsp": (True, False),  # ablation: spatial term only
    "sttp": (False, True),  # ablation: temporal term only
    "hard": (False, False),  # Fig. 7: drop the top-K % most attended tokens of each frame, then prune
    "redistribute": (False, False),  # Fig. 7: move attention off the sink set, then prune
}
# the options each alternative mode takes, with their defaults (None: not set unless given)
SINK_MODE_OPTIONS: dict[str, dict[str, Any]] = {
    "hard": {"hard_k": HARD_K, "hard_unit": "token"},
    "redistribute": {"redistribute_p": REDISTRIBUTE_P, "redistribute_top": REDISTRIBUTE_TOP,
                     "redistribute_threshold": None},
}


def stop_parameters(pruner: str, family: str, mode: str, mu_s: float | None = None,
                    mu_t: float | None = None, **options: Any) -> dict[str, Any]:
    """Resolve a stop mode into the keyword arguments of ``build_pruner`` that a run uses, with provenance.

    Always returns ``stop`` (the mode), ``mu_s``, ``mu_t`` and ``mu_source`` (where the mu's came from).
    For "hard" and "redistribute" it also returns ``sink_handling`` and that mode's options, defaults
    filled in (hard: ``hard_k`` = 0.1, ``hard_unit`` = "token"; redistribute: ``redistribute_p`` = 0.6
    and ``redistribute_top`` = 0.1, or ``redistribute_threshold`` when given). The contract: every key
    other than ``stop`` and ``mu_source`` is a keyword argument of ``build_pruner``, so a caller does

        stop = stop_parameters(name, family, mode, mu_s, mu_t, **stop_options)
        pruner = build_pruner(name, ratio, gamma=gamma, seed=seed,
                              **{k: v for k, v in stop.items() if k not in ("stop", "mu_source")},
                              **pruner_settings)

    and records the whole dict next to the results. Explicit ``mu_s`` / ``mu_t`` override the table (for
    calibration sweeps). Pruners without an attention ranking (dense, random, uniform, prunevid, dpc_knn)
    resolve "on" / "stsp" / "sttp" to SToP off (they have nothing for SToP to correct); asking them for
    "hard" or "redistribute", giving a mode options it does not take, or mu overrides to a mode without
    SToP terms, is a ValueError with one line.
    """
    mode = str(mode).lower()
    if mode not in STOP_MODES:
        raise ValueError(f"stop={mode!r} is unknown; allowed: {', '.join(STOP_MODES)}")
    if pruner not in PRUNERS:
        raise ValueError(f"pruner={pruner!r} is unknown; allowed: {', '.join(PRUNERS)}")
    allowed = SINK_MODE_OPTIONS.get(mode, {})
    stray = sorted(k for k, v in options.items() if v is not None and k not in allowed)
    if stray:
        owners = [m for m, opts in SINK_MODE_OPTIONS.items() if stray[0] in opts]
        hint = f"it belongs to stop={owners[0]}" if owners else "allowed: " + ", ".join(
            sorted({k for opts in SINK_MODE_OPTIONS.values() for k in opts}))
        raise ValueError(f"{stray[0]}={options[stray[0]]!r} does not apply to stop={mode}; {hint}")
    cls = PRUNERS[pruner]
    attention = [name for name, c in PRUNERS.items() if c.uses_attention]
    if mode in SINK_MODE_OPTIONS:
        if not cls.uses_attention:
            raise ValueError(f"stop={mode} needs a pruner that ranks tokens by attention ({', '.join(attention)}); "
                             f"got pruner={pruner!r}")
        if mu_s is not None or mu_t is not None:
            given = "mu_s" if mu_s is not None else "mu_t"
            raise ValueError(f"{given}={mu_s if mu_s is not None else mu_t!r} has no effect with stop={mode} "
                             f"(it uses no SToP term); remove it or use stop=on")
        chosen = {k: (options[k] if options.get(k) is not None else default) for k, default in allowed.items()}
        if mode == "redistribute" and chosen["redistribute_threshold"] is not None and options.get("redistribute_top") is None:
            chosen["redistribute_top"] = None  # a threshold replaces the top-fraction default
        chosen = {k: v for k, v in chosen.items() if v is not None}
        PRUNERS[pruner](0.5, sink_handling=mode, **chosen)  # validates the values, one-line ValueError
        return {"stop": mode, "mu_s": 0.0, "mu_t": 0.0, "mu_source": f"n/a (stop={mode} uses no SToP term)",
                "sink_handling": mode, **chosen}
    if not cls.uses_attention:
        return {"stop": "off", "mu_s": 0.0, "mu_t": 0.0, "mu_source": "n/a (pruner has no attention ranking)"}
    if mode == "sttp" and not cls.uses_temporal_test:
        temporal = [name for name, c in PRUNERS.items() if c.uses_temporal_test]
        raise ValueError(f"stop=sttp needs a pruner with a temporal redundancy test ({', '.join(temporal)}); "
                         f"got pruner={pruner!r}")
    spatial, temporal = STOP_MODES[mode]
    table_s, table_t = PAPER_MU.get(pruner, (0.0, 0.0))
    source = "paper" if family in CALIBRATED_FAMILIES else "paper llava_ov values, uncalibrated for " + family
    if mu_s is not None or mu_t is not None:
        source = "user override"
    resolved_s = (table_s if mu_s is None else float(mu_s)) if spatial else 0.0
    resolved_t = (table_t if mu_t is None else float(mu_t)) if temporal and cls.uses_temporal_test else 0.0
    if mode == "off":
        source = "off"
    return {"stop": mode, "mu_s": resolved_s, "mu_t": resolved_t, "mu_source": source}
