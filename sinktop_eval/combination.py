"""The one place that decides what a (backbone, pruner, stop, ratio) combination is.

    combo = resolve_combination("tiny_llava_ov", "holitom", stop="on", ratio=0.1)
    combo.pruner            # a built `sinktop_eval.pruning.Pruner`, ready to call
    combo.describe()        # backbone, family, weights, pruner, stop, mu_s, mu_t, mu_source, gamma, ratio, settings

The runner (from a Hydra config), the lmms-eval model (from ``--model_args``) and the tables (from
results rows written from ``describe()``) all go through here, so aliases, "dense ignores the ratio"
(the pruner reports its effective ratio), the SToP mu table and its provenance are applied exactly once.
Nothing here loads a model: a bad combination fails in milliseconds with one line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .backbones.registry import backbone_info
from .pruning import Pruner, build_pruner
from .pruning.defaults import stop_parameters
from .results import USER_OVERRIDE

PRUNER_ALIASES = {"none": "dense"}  # config / model_args spelling -> registered pruner name


class CombinationError(ValueError):
    """A combination that cannot be built (unknown name, a value out of range, an unusable SToP term)."""


def stop_mode(value: Any) -> str:
    """A stop mode from config or model_args text; lmms-eval parses ``stop=true`` into a bool."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value).lower()


@dataclass(frozen=True)
class Combination:
    backbone: str  # registered backbone name or checkpoint directory, as given
    family: str  # architecture family the SToP values and paper tables are keyed by (qwen25vl, llava_ov)
    weights: str  # "pretrained" | "random" (an offline twin: a pipeline check, not a measurement)
    checkpoint: str  # hub id, local directory, or the twin's name
    pruner: Pruner
    stop: str  # the resolved mode: "off" for pruners without an attention ranking
    mu_source: str  # where the SToP parameters came from: the paper's table, "user override" (mu or gamma), off
    settings: dict[str, Any] = field(default_factory=dict)  # the pruner's own knobs as given (overrides only)

    @property
    def ratio(self) -> float:
        """The effective retention ratio (1.0 for dense, whatever was asked)."""
        return float(self.pruner.describe()["ratio"])

    def describe(self) -> dict[str, Any]:
        """Results-row columns: everything that identifies the combination, pruner hyper-parameters included."""
        pruner = self.pruner.describe()
        return {"backbone": self.backbone, "family": self.family, "weights": self.weights, "checkpoint": self.checkpoint,
                "pruner": pruner.pop("pruner"), "stop": self.stop, "mu_s": pruner.pop("mu_s"),
                "mu_t": pruner.pop("mu_t"), "mu_source": self.mu_source, "gamma": pruner.pop("gamma"),
                "ratio": pruner.pop("ratio"), "pruner_settings": pruner}

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.pruner.name} r={self.ratio:g} stop={self.stop}"


def resolve_combination(backbone: str, pruner: str, stop: Any = "on", ratio: float = 0.1, *,
                        mu_s: float | None = None, mu_t: float | None = None, gamma: float | None = None, seed: int = 0,
                        settings: dict[str, Any] | None = None, path: str | None = None, variant: str = "paper",
                        stop_options: dict[str, Any] | None = None) -> Combination:
    """Validate and resolve one combination; `CombinationError` (one line) on any bad part.

    ``mu_s`` / ``mu_t`` are the user's overrides (None = the paper's value for the pruner and the
    backbone's family); ``gamma`` None and ``settings`` keep the pruner's own defaults, which live only
    in its class; ``path`` is a local checkpoint directory for a registered backbone; ``variant`` is
    "paper" or "release" (the SToP release's code-only sink terms); ``stop_options`` are the options of
    the hard / redistribute stop modes (e.g. hard_k), None = their defaults.
    """
    settings = dict(settings or {})
    if gamma is not None:
        settings["gamma"] = gamma
    try:
        info = backbone_info(str(backbone), path)
        name = PRUNER_ALIASES.get(str(pruner), str(pruner))
        stop_settings = stop_parameters(name, info.mu_family, stop_mode(stop), mu_s, mu_t, **(stop_options or {}))
        pruner_kwargs = {k: v for k, v in stop_settings.items() if k not in ("stop", "mu_source")}  # its contract
        built = build_pruner(name, ratio, seed=seed, variant=variant, **pruner_kwargs, **settings)
    except ValueError as err:  # every layer below reports one line naming the value and the allowed ones
        raise CombinationError(str(err)) from None
    source = stop_settings["mu_source"]
    if gamma is not None and built.stop:  # any SToP parameter set by hand makes a calibration run
        source = USER_OVERRIDE
    elif info.mu_family != info.family and source.startswith("paper"):  # e.g. LLaVA-Video runs LLaVA-OV's values
        source = f"{source} ({info.mu_family} values for {info.family}: {info.mu_note})"
    return Combination(backbone=str(backbone), family=info.family, weights=info.weights, checkpoint=info.checkpoint,
                       pruner=built, stop=stop_settings["stop"], mu_source=source, settings=settings)
