"""From a composed Hydra config to a validated `RunSpec`, before anything heavy is loaded.

Every check here fails with one line naming the bad value and the valid ones, so a broken sweep
stops in a second instead of after a 7B checkpoint has loaded.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.types import OverrideType
from omegaconf import DictConfig, OmegaConf

from .pruning import PRUNERS
from .pruning.defaults import STOP_MODES, stop_parameters

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
TASKS_DIR = REPO_ROOT / "tasks"
WANDB_MODES = ("auto", "offline", "online", "disabled")
CHOICE_GROUPS = ("model", "pruner", "stop", "tasks")  # config groups chosen on the command line
APPENDED_GROUPS = ("model", "pruner")  # not in the defaults list: chosen with +group=<option>


class ConfigError(ValueError):
    """A user-facing configuration mistake (printed as one line, exit code 2)."""


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@dataclass(frozen=True)
class ModelSpec:
    name: str  # config name, e.g. tiny_qwen25vl
    backbone: str  # id for load_backbone
    checkpoint: str
    path: str | None
    dtype: str
    device: str
    attn_implementation: str

    @property
    def family(self) -> str:
        return self.backbone.removeprefix("tiny_")

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `sinktop_eval.backbones.load_backbone`."""
        device = None if self.device == "auto" else self.device
        return {"dtype": self.dtype, "device": device, "attn_implementation": self.attn_implementation,
                "path": self.path}


@dataclass(frozen=True)
class RunSpec:
    """One combination, fully resolved: what the results rows and the run directory are keyed by."""

    model: ModelSpec
    pruner: str
    pruner_settings: dict
    stop: str
    mu_s: float
    mu_t: float
    mu_source: str
    gamma: float
    ratio: float
    frames: int
    seed: int
    limit: int | float | None
    max_new_tokens: int | None
    tasks_label: str
    tasks: tuple[str, ...]
    output_dir: Path
    force: bool = False
    rescore: bool = False
    data_root: str | None = None
    judge: dict = field(default_factory=dict)
    wandb: dict = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """Everything that changes the numbers (and nothing that does not, like output_dir or force)."""
        return {"model": self.model.name, "checkpoint": self.model.path or self.model.checkpoint,
                "dtype": self.model.dtype, "pruner": self.pruner, "pruner_settings": self.pruner_settings,
                "stop": self.stop, "mu_s": self.mu_s, "mu_t": self.mu_t, "gamma": self.gamma, "ratio": self.ratio,
                "frames": self.frames, "seed": self.seed, "limit": self.limit,
                "max_new_tokens": self.max_new_tokens, "tasks": list(self.tasks)}

    @property
    def run_id(self) -> str:
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        limit = f"_limit{self.limit:g}" if self.limit is not None else ""
        return f"{self.model.name}_{self.pruner}_stop-{self.stop}_r{self.ratio:g}_{self.tasks_label}{limit}_{digest}"

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.run_id

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output_dir"] = str(self.output_dir)
        out["run_id"] = self.run_id
        out["judge"] = {k: ("***" if k == "key" and v else v) for k, v in self.judge.items()}
        return out


def _plain(node: Any) -> dict:
    """A config node as a plain dict (missing or empty -> {})."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node or {})


def check_group_overrides(args: list[str]) -> None:
    """Command-line choices of the config groups (``+pruner=nope``, ``tasks=nope``, sweeps too) checked
    against the files in configs/, so a typo fails with one line naming the valid options.

    Anything this cannot parse is left to Hydra, which reports it itself.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue  # flags (-m, --cfg job) and deletions
        try:
            override = parser.parse_override(arg)
        except Exception:  # noqa: BLE001 - malformed: Hydra's own error names it
            continue
        group = override.key_or_group
        if group not in CHOICE_GROUPS or override.package is not None or override.is_delete():
            continue
        try:
            values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        except Exception:  # noqa: BLE001 - e.g. glob sweeps, which Hydra expands itself
            continue
        options = group_options(group)
        for value in values:
            if value is not None and str(value) not in options:
                raise ConfigError(f"{group}={value!r} is unknown; allowed: {', '.join(options)}")
        if group in APPENDED_GROUPS and override.type == OverrideType.CHANGE:
            raise ConfigError(f"{group} is not in the defaults list: write +{group}={','.join(map(str, values))}")


def _number(name: str, value: Any, allowed: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise ConfigError(f"{name}={value!r} is invalid; allowed: {allowed}")
    return value


def _choice(cfg: DictConfig, group: str) -> DictConfig:
    node = cfg.get(group)
    if node is None:
        raise ConfigError(f"no {group} chosen: add +{group}=<{'|'.join(group_options(group))}> "
                          f"(e.g. python -m sinktop_eval +model=tiny_qwen25vl +pruner=holitom)")
    return node


def resolve_tasks(cfg: DictConfig, default_tasks: str) -> tuple[str, tuple[str, ...]]:
    tasks = cfg.get("tasks")
    if tasks is None or tasks.get("names") is None:
        label = default_tasks
        if label not in group_options("tasks"):
            raise ConfigError(f"model.default_tasks={label!r} is not a task set; allowed: {', '.join(group_options('tasks'))}")
        tasks = OmegaConf.load(CONFIG_DIR / "tasks" / f"{label}.yaml")
    names = tuple(str(n) for n in tasks.names)
    if not names:
        raise ConfigError("tasks.names is empty; choose a task set, e.g. tasks=smoke or tasks=paper")
    return str(tasks.get("name", "custom")), names


def resolve_run(cfg: DictConfig) -> RunSpec:
    """Validate a composed config and resolve defaults (stop mu's, dense ratio, the model's tasks)."""
    model_cfg, pruner_cfg = _choice(cfg, "model"), _choice(cfg, "pruner")
    model = ModelSpec(name=str(model_cfg.name), backbone=str(model_cfg.backbone),
                      checkpoint=str(model_cfg.checkpoint), path=model_cfg.get("path"),
                      dtype=str(model_cfg.get("dtype", "bfloat16")), device=str(model_cfg.get("device", "auto")),
                      attn_implementation=str(model_cfg.get("attn_implementation", "sdpa")))
    pruner = str(pruner_cfg.name)
    if pruner not in PRUNERS:
        raise ConfigError(f"pruner.name={pruner!r} is unknown; allowed: {', '.join(PRUNERS)}")
    ratio = _number("ratio", cfg.ratio, "a number in (0, 1], e.g. ratio=0.1", lambda r: 0 < r <= 1)
    frames = int(_number("frames", cfg.frames, "an integer >= 1 (the paper uses 32)", lambda f: isinstance(f, int) and f >= 1))
    seed = int(_number("seed", cfg.seed, "an integer", lambda s: isinstance(s, int)))
    limit = cfg.get("limit")
    if limit is not None:
        _number("limit", limit, "null (all samples), an integer >= 1, or a fraction in (0, 1)",
                lambda v: (isinstance(v, int) and v >= 1) or (isinstance(v, float) and 0 < v < 1))
    max_new = cfg.get("max_new_tokens")
    if max_new is not None:
        _number("max_new_tokens", max_new, "null or an integer >= 1", lambda v: isinstance(v, int) and v >= 1)

    stop_cfg = cfg.get("stop") or {}
    mode = str(stop_cfg.get("mode", "on"))
    if mode not in STOP_MODES:
        raise ConfigError(f"stop.mode={mode!r} is unknown; allowed: {', '.join(STOP_MODES)}")
    gamma = _number("stop.gamma", stop_cfg.get("gamma", 1.1), "a number > 0 (the paper uses 1.1)", lambda g: g > 0)
    try:
        stop = stop_parameters(pruner, model.family, mode, stop_cfg.get("mu_s"), stop_cfg.get("mu_t"))
    except ValueError as err:
        raise ConfigError(str(err)) from None

    wandb = _plain(cfg.get("wandb"))
    if str(wandb.get("mode", "auto")) not in WANDB_MODES:
        raise ConfigError(f"wandb.mode={wandb.get('mode')!r} is unknown; allowed: {', '.join(WANDB_MODES)}")
    tasks_label, tasks = resolve_tasks(cfg, str(model_cfg.get("default_tasks", "paper")))
    settings = _plain(pruner_cfg.get("settings"))
    return RunSpec(
        model=model, pruner=pruner, pruner_settings=settings, stop=stop["stop"], mu_s=stop["mu_s"],
        mu_t=stop["mu_t"], mu_source=stop["mu_source"], gamma=float(gamma),
        ratio=1.0 if pruner == "dense" else float(ratio), frames=frames, seed=seed, limit=limit,
        max_new_tokens=max_new, tasks_label=tasks_label, tasks=tasks, output_dir=Path(str(cfg.output_dir)),
        force=bool(cfg.get("force", False)), rescore=bool(cfg.get("rescore", False)), data_root=cfg.get("data_root"),
        judge=_plain(cfg.get("judge")), wandb=wandb)
