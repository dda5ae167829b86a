"""SToP's published settings: (mu_s, mu_t) per base pruner and backbone family, and the stop modes.

Values from the SToP paper (tuned on LLaVA-OneVision at r = 0.1). For Qwen2.5-VL no trustworthy values
exist yet (the published 3.7 belongs to a different importance signal), so Qwen runs reuse the
LLaVA-OV values and every results row records where its mu's came from (``mu_source``).
"""
from __future__ import annotations

from .registry import PRUNERS

PAPER_MU: dict[str, tuple[float, float]] = {
    "visionzip": (0.03, 0.0),
    "fastvid": (0.02, 0.0),
    "holitom": (0.04, 0.07),
}
CALIBRATED_FAMILIES = ("llava_ov",)

# stop mode -> which SToP terms are active (STSP, STTP)
STOP_MODES: dict[str, tuple[bool, bool]] = {
    "off": (False, False),
    "on": (True, True),
    "stsp": (True, False),  # ablation: spatial term only
    "sttp": (False, True),  # ablation: temporal term only
}


def stop_parameters(pruner: str, family: str, mode: str, mu_s: float | None = None,
                    mu_t: float | None = None) -> dict:
    """Resolve a stop mode into the (mu_s, mu_t) a run uses, with their provenance.

    Explicit ``mu_s`` / ``mu_t`` override the table (for calibration sweeps). Pruners without an
    attention ranking (dense, random, uniform) always resolve to SToP off.
    """
    mode = str(mode).lower()
    if mode not in STOP_MODES:
        raise ValueError(f"stop={mode!r} is unknown; allowed: {', '.join(STOP_MODES)}")
    if pruner not in PRUNERS:
        raise ValueError(f"pruner={pruner!r} is unknown; allowed: {', '.join(PRUNERS)}")
    cls = PRUNERS[pruner]
    if not cls.uses_attention:
        return {"stop": "off", "mu_s": 0.0, "mu_t": 0.0, "mu_source": "n/a (pruner has no attention ranking)"}
    if mode == "sttp" and not cls.uses_temporal_test:
        raise ValueError(f"stop=sttp needs a pruner with a temporal redundancy test (holitom); got pruner={pruner!r}")
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
