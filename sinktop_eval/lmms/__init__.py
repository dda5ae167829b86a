"""The lmms-eval layer: one `lmms` model class per (backbone, pruner, SToP, ratio) combination.

It knows lmms-eval's request protocol and the public APIs of `sinktop_eval.backbones` and
`sinktop_eval.pruning`, and nothing of their internals. `parallel` (the launch's ranks) imports neither,
so the runner can ask which rank it is before lmms-eval is imported; the model class loads on first use.
"""
from __future__ import annotations

from typing import Any

__all__ = ["SinktopModel", "SinktopModelError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
