"""The lmms-eval layer: one `lmms` model class per (backbone, pruner, SToP, ratio) combination.

It knows lmms-eval's request protocol and the public APIs of `sinktop_eval.backbones` and
`sinktop_eval.pruning`, and nothing of their internals.
"""
from .model import SinktopModel, SinktopModelError

__all__ = ["SinktopModel", "SinktopModelError"]
