"""Pruners by name: the one place that maps config strings to classes."""
from __future__ import annotations

from .base import Pruner
from .baselines import DensePruner, RandomPruner, UniformPruner
from .dpc_knn import DPCKNNPruner
from .fastvid import FastVIDPruner
from .flashvid import FlashVIDPruner
from .holitom import HoliTomPruner
from .prunevid import PruneVidPruner
from .visionzip import VisionZipPruner

PRUNERS: dict[str, type[Pruner]] = {
    cls.name: cls for cls in (DensePruner, RandomPruner, UniformPruner, VisionZipPruner, FastVIDPruner, HoliTomPruner,
                               FlashVIDPruner, PruneVidPruner, DPCKNNPruner)
}


def build_pruner(name: str, ratio: float = 1.0, mu_s: float = 0.0, mu_t: float = 0.0, gamma: float = 1.1,
                 seed: int = 0, **settings) -> Pruner:
    """A pruner for one (name, ratio, SToP) setting; ``settings`` are the pruner's own knobs (e.g. tau).

    mu_s = mu_t = 0 is the pristine base pruner; SToP applies to the attention-based ones.
    """
    if name not in PRUNERS:
        raise ValueError(f"pruner={name!r} is unknown; allowed: {', '.join(PRUNERS)}")
    try:
        return PRUNERS[name](ratio, mu_s=mu_s, mu_t=mu_t, gamma=gamma, seed=seed, **settings)
    except TypeError as err:  # an unknown keyword: name it and the pruner
        raise ValueError(f"bad setting for pruner '{name}': {err}") from None
