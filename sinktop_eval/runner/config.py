"""The run's config: its schema (a Hydra structured config), and from a composed config to a `RunSpec`.

Hydra composes ``configs/`` over the schema below, so every key has a type and a default in exactly one
place (``python -m sinktop_eval --cfg job`` prints them). What a combination *is* (aliases, the effective
ratio, the SToP values and their provenance) is decided by `sinktop_eval.combination`, not here.

Every check fails with one line naming the bad value and the valid ones, so a broken sweep stops in a
second instead of after a 7B checkpoint has loaded.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import typing
from dataclasses import asdict, dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.types import OverrideType, Transformer
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..combination import Combination, CombinationError, resolve_combination
from ..files import first_line
from ..resources import CONFIG_DIR

WANDB_MODES = ("auto", "offline", "online", "disabled")
CHOICE_GROUPS = ("model", "pruner", "stop", "tasks")  # config groups chosen on the command line
APPENDED_GROUPS = ("model", "pruner")  # not in the defaults list: chosen with +group=<option>


class ConfigError(ValueError):
    """A user-facing configuration mistake (printed as one line, exit code 2)."""


# --------------------------------------------------------------------------- schema


@dataclass
class ModelConfig:
    backbone: str = MISSING  # a name of sinktop_eval.backbones.BACKBONES (or a checkpoint directory)
    path: Optional[str] = None  # a local checkpoint directory instead of the registered hub id
    dtype: str = "auto"  # auto = bfloat16 on cuda, float32 on cpu
    device: str = "auto"  # auto = cuda when available, else cpu
    attn_implementation: str = "sdpa"
    # the adapter's own settings and the real-shape twins' depth (load_backbone's keywords; schema and
    # defaults from the backbone registry), e.g. rope_text_after_video: official | hf (Qwen2.5-VL);
    # layers / vision_layers (real_shape_*: null = full depth)
    settings: Any = field(default_factory=dict)


@dataclass
class PrunerConfig:
    name: str = MISSING  # a name of sinktop_eval.pruning.PRUNERS (or the alias none)
    variant: str = "paper"  # paper | release (visionzip, fastvid, holitom: the SToP release's code-only sink terms)
    settings: Any = field(default_factory=dict)  # the pruner's own hyper-parameters (schema: pruner_settings_schema)


@dataclass
class StopConfig:
    mode: str = "on"  # on | off | stsp | sttp | hard | redistribute (sinktop_eval.pruning.defaults.STOP_MODES)
    mu_s: Optional[float] = None  # None = the paper's value for (pruner, backbone family); set to calibrate
    mu_t: Optional[float] = None
    gamma: Optional[float] = None  # None = the pruners' default (the paper's 1.1)
    # options of the sink-handling alternatives (None = their defaults, pruning.defaults.SINK_MODE_OPTIONS)
    hard_k: Optional[float] = None  # stop=hard: share of each frame's most attended tokens dropped first
    hard_unit: Optional[str] = None
    redistribute_p: Optional[float] = None  # stop=redistribute
    redistribute_top: Optional[float] = None
    redistribute_threshold: Optional[float] = None

    def options(self) -> dict[str, Any]:
        """The alternative modes' options that were set (stop_parameters' keyword arguments)."""
        return {k: v for k, v in asdict(self).items() if k not in ("mode", "mu_s", "mu_t", "gamma") and v is not None}


@dataclass
class TasksConfig:
    name: str = MISSING
    # benchmark id (as in the paper tables) -> lmms-eval task or list of tasks; "group/subgroup" names a group
    # that a listed group contains (evaluated once, through its parent)
    benchmarks: dict[str, Any] = MISSING
    data_root: Optional[str] = None  # the set's own data (builtin:smoke = the synthetic benchmark)


@dataclass
class JudgeSettings:  # an OpenAI-compatible chat-completions endpoint (else $SINKTOP_JUDGE_URL/_KEY/_MODEL)
    url: Optional[str] = None
    key: Optional[str] = None
    model: Optional[str] = None


@dataclass
class WandbSettings:
    mode: str = "auto"  # auto: online only if W&B is configured, else offline | offline | online | disabled
    project: str = "sinktop-eval"
    entity: Optional[str] = None
    group: Optional[str] = None


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)  # +model=<option> (configs/model/)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)  # +pruner=<option> (configs/pruner/)
    stop: StopConfig = field(default_factory=StopConfig)
    tasks: TasksConfig = MISSING
    ratio: float = 0.1  # retention ratio in (0, 1]; dense records 1.0
    frames: int = 32  # frames sampled uniformly per video
    seed: int = 0
    limit: Optional[float] = None  # samples per task: an integer >= 1 or a fraction in (0, 1); None = all
    max_new_tokens: Optional[int] = None  # cap on the task's own max_new_tokens
    skip_bad_videos: bool = False  # evaluate without items whose video is missing, empty or corrupt (counted: skipped)
    force: bool = False  # re-run a finished combination (the old run is moved aside)
    rescore: bool = False  # re-score a finished combination from its saved answers, no generation
    output_dir: str = "results/runs"
    data_root: Optional[str] = None  # where the benchmarks live (else $SINKTOP_DATA_ROOT)
    feature_cache: Optional[str] = None  # a folder for vision-encoder outputs shared across combinations; None = off
    feature_cache_gb: float = 50.0  # its size bound (least recently used entries are evicted)
    objective: Optional[str] = None  # "benchmark/metric" a job returns to a Hydra sweeper (Optuna in make calibrate)
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    wandb: WandbSettings = field(default_factory=WandbSettings)


SCHEMA_NAME = "run_schema"


def pruner_settings_schema(cls: type) -> type:
    """A dataclass of a pruner's own hyper-parameters (its keyword-only ``__init__`` arguments), with the
    class's defaults and types: the defaults live in the pruner's code only, and Hydra still types and
    shows them (``pruner.settings.tau=0.65`` is checked; ``--cfg job`` prints the values in force)."""
    from ..pruning import Pruner

    hints = typing.get_type_hints(cls.__init__)
    shared = set(inspect.signature(Pruner.__init__).parameters)  # variant and the stop options have keys of their own
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.kind is p.KEYWORD_ONLY and p.name not in shared]
    return make_dataclass(f"{cls.__name__}Settings", [(p.name, hints.get(p.name, Any), field(default=p.default))
                                                      for p in params])


def backbone_settings_schema(name: str) -> type:
    """A dataclass of a backbone's settings (the registry's defaults; values of any type, checked on load)."""
    from ..backbones.registry import backbone_settings

    return make_dataclass(f"{name}_settings", [(k, Any, field(default=v)) for k, v in backbone_settings(name).items()])


def register_schema() -> None:
    """Make the schemas known to Hydra: the run's (config.yaml's defaults list starts with it), one
    ``pruner/base_<name>`` per registered pruner and one ``model/base_<name>`` per registered backbone,
    which each configs/pruner/<name>.yaml and configs/model/<name>.yaml extends."""
    from ..backbones.registry import BACKBONES
    from ..pruning import PRUNERS

    store = ConfigStore.instance()
    store.store(name=SCHEMA_NAME, node=RunConfig)
    for name, cls in PRUNERS.items():
        store.store(group="pruner", name=f"base_{name}", node=PrunerConfig(name=name, settings=pruner_settings_schema(cls)()))
    for name in BACKBONES:
        store.store(group="model", name=f"base_{name}",
                    node=ModelConfig(backbone=name, settings=backbone_settings_schema(name)()))


# --------------------------------------------------------------------------- command-line checks


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _validation_target(pruner: str | None, model: str | None) -> DictConfig:
    """The schema with model.* and pruner.* filled by their schemas (the chosen backbone's and pruner's own
    settings), so every key an override can name is checked."""
    from ..backbones.registry import BACKBONES
    from ..pruning import PRUNERS

    target = OmegaConf.structured(RunConfig)
    if model in BACKBONES:
        target.model = ModelConfig(backbone=model, settings=backbone_settings_schema(model)())
    cls = PRUNERS.get(pruner) if pruner else None
    target.pruner = PrunerConfig(name=pruner or MISSING,
                                 settings=pruner_settings_schema(cls)() if cls else {})
    return target


def _parse(parser, arg: str):
    """(override, its values) or None for what Hydra should report itself (flags, malformed, glob sweeps)."""
    if "=" not in arg or arg.startswith("-"):
        return None  # flags (-m, --cfg job) and deletions
    try:
        override = parser.parse_override(arg)
        values = (list(override.sweep_iterator(transformer=Transformer.identity))
                  if override.is_sweep_override() else [override.value()])
    except Exception:  # noqa: BLE001 - malformed, or glob sweeps: Hydra's own handling
        return None
    if override.package is not None or override.is_delete() or override.key_or_group.replace("/", ".").split(".")[0] == "hydra":
        return None  # hydra.* keys and hydra/<group> choices (e.g. hydra/launcher=submitit_slurm): Hydra's own
    return override, values


def check_overrides(args: list[str]) -> None:
    """Command-line overrides checked before Hydra runs, so a mistake is one line naming the fix.

    Group choices (``+pruner=nope``, ``tasks=nope``, sweeps too) against the files in configs/; values of
    schema keys (``ratio=abc``, ``frames=1.5``, an unknown key, a pruner setting) against the schema's
    types, for every pruner chosen. Anything this cannot parse, and ``hydra.*`` keys, are left to Hydra,
    which reports them itself.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = [p for p in (_parse(parser, arg) for arg in args) if p is not None]
    pruners: list[str | None] = []
    models: list[str | None] = []
    for override, values in parsed:
        key = override.key_or_group
        if key not in CHOICE_GROUPS:
            continue
        options = group_options(key)
        for value in values:
            if value is not None and str(value) not in options:
                raise ConfigError(f"{key}={value!r} is unknown; allowed: {', '.join(options)}")
        if key in APPENDED_GROUPS and override.type == OverrideType.CHANGE:
            raise ConfigError(f"{key} is not in the defaults list: write +{key}={','.join(map(str, values))}")
        if key == "pruner":
            pruners += [str(v) for v in values]
        if key == "model":
            models += [str(v) for v in values]
    from ..combination import PRUNER_ALIASES

    model_files = {m: OmegaConf.load(CONFIG_DIR / "model" / f"{m}.yaml") for m in dict.fromkeys(models)}
    backbones = [next((d.removeprefix("base_") for d in cfg.get("defaults", []) if isinstance(d, str)), None)
                 for cfg in model_files.values()]
    for pruner, model in ((p, m) for p in dict.fromkeys(pruners or [None]) for m in dict.fromkeys(backbones or [None])):
        target = _validation_target(PRUNER_ALIASES.get(pruner, pruner), model)
        for override, values in parsed:
            if override.key_or_group in CHOICE_GROUPS:
                continue
            for value in values:
                try:
                    OmegaConf.update(target, override.key_or_group, value, merge=True,
                                     force_add=override.type == OverrideType.FORCE_ADD)
                except OmegaConfBaseException as err:
                    key = override.key_or_group
                    where = (f" (pruner {pruner})" if key.startswith("pruner.settings.") and pruner else
                             f" (backbone {model})" if key.startswith("model.settings.") and model else "")
                    raise ConfigError(f"{override.key_or_group}={value!r} is invalid{where}: {first_line(err)}") from None


# --------------------------------------------------------------------------- resolution

@dataclass(frozen=True)
class TaskSet:
    name: str
    benchmarks: dict[str, tuple[str, ...]]  # benchmark id -> the lmms-eval tasks (or groups) that measure it
    data_root: str | None

    @property
    def names(self) -> tuple[str, ...]:
        """What lmms-eval evaluates: the listed tasks and groups ("group/subgroup" through its group)."""
        return tuple(dict.fromkeys(t.split("/")[0] for tasks in self.benchmarks.values() for t in tasks))

    @property
    def benchmark_of(self) -> dict[str, str]:
        """Task or group name (as lmms-eval reports it) -> benchmark id."""
        return {task.split("/")[-1]: bench for bench, tasks in self.benchmarks.items() for task in tasks}


@dataclass(frozen=True)
class RunSpec:
    """One combination over one task set, fully resolved: what the run directory and results rows are keyed by."""

    config: RunConfig
    combination: Combination
    tasks: TaskSet
    dtype: str  # resolved (auto -> what the device gets)
    limit: int | float | None

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def backbone_settings(self) -> dict[str, Any]:
        """load_backbone's keyword settings (the model option's schema turns them into a dataclass)."""
        settings = self.config.model.settings
        return dict(settings) if isinstance(settings, dict) else asdict(settings)

    def identity(self) -> dict[str, Any]:
        """Everything that changes the numbers (and nothing that does not, like output_dir or force)."""
        combo = self.combination.describe()
        backbone_settings = {"backbone_settings": self.backbone_settings} if self.backbone_settings else {}
        return {"backbone": combo["backbone"], "checkpoint": combo["checkpoint"], "dtype": self.dtype, **backbone_settings,
                **{k: combo[k] for k in ("pruner", "pruner_settings", "stop", "mu_s", "mu_t", "gamma", "ratio")},
                "frames": self.config.frames, "seed": self.config.seed, "limit": self.limit,
                "max_new_tokens": self.config.max_new_tokens, "tasks": list(self.tasks.names),
                # only when on, so the ids of full runs stay what they were
                **({"skip_bad_videos": True} if self.config.skip_bad_videos else {})}

    @property
    def run_id(self) -> str:
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:8]
        limit = f"_limit{self.limit:g}" if self.limit is not None else ""
        limit += "_skipbad" if self.config.skip_bad_videos else ""  # never mistaken for a run over the full set
        combo = self.combination
        return (f"{Path(combo.backbone).name}_{combo.pruner.name}_stop-{combo.stop}_r{combo.ratio:g}_"
                f"{self.tasks.name}{limit}_{digest}")

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.run_id

    def to_dict(self) -> dict[str, Any]:
        """For config.yaml and W&B: the resolved combination and the config it came from (judge key hidden)."""
        config = asdict(self.config)
        config["judge"]["key"] = "***" if config["judge"]["key"] else None
        return {"run_id": self.run_id, **self.combination.describe(), "dtype": self.dtype, "limit": self.limit, "tasks": list(self.tasks.names),
                "benchmarks": {k: list(v) for k, v in self.tasks.benchmarks.items()}, "config": config}


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _task_set(tasks: TasksConfig) -> TaskSet:
    benchmarks = {str(bench): tuple(str(t) for t in ([names] if isinstance(names, str) else names))
                  for bench, names in tasks.benchmarks.items()}
    if not benchmarks or not all(benchmarks.values()):
        raise ConfigError(f"tasks.benchmarks of task set {tasks.name!r} is empty; choose a task set, e.g. tasks=smoke")
    return TaskSet(name=tasks.name, benchmarks=benchmarks, data_root=tasks.data_root)


def output_dirs(args: list[str]) -> list[str]:
    """Every ``output_dir`` the command line asks for (sweeps expanded; the schema's default when none)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    found = [p for p in (_parse(parser, arg) for arg in args) if p is not None and p[0].key_or_group == "output_dir"]
    return [str(v) for _, values in found for v in values] or [RunConfig.output_dir]


def compose(overrides: list[str]) -> DictConfig:
    """The config `python -m sinktop_eval <overrides>` runs with (Hydra's compose API, same schema and files)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schema()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return hydra_compose(config_name="config", overrides=list(overrides))


def task_set(name: str) -> TaskSet:
    """A task set of configs/tasks/ as a run resolves it (defaults lists merged)."""
    return _task_set(OmegaConf.to_object(compose([f"tasks={name}"]).tasks))


def resolve_run(cfg: DictConfig) -> RunSpec:
    """Validate a composed config (types by the schema, ranges here) and resolve its combination."""
    for group, key in (("model", "backbone"), ("pruner", "name")):
        if OmegaConf.is_missing(cfg[group], key):
            raise ConfigError(f"no {group} chosen: add +{group}=<{'|'.join(group_options(group))}> "
                              f"(e.g. python -m sinktop_eval +model=tiny_qwen25vl +pruner=holitom)")
    config: RunConfig = OmegaConf.to_object(cfg)
    _require(config.frames >= 1, "frames", config.frames, "an integer >= 1 (the paper uses 32)")
    limit = config.limit
    if limit is not None:
        _require((limit >= 1 and float(limit).is_integer()) or 0 < limit < 1, "limit", limit,
                 "null (all samples), an integer >= 1, or a fraction in (0, 1)")
        limit = int(limit) if limit >= 1 else float(limit)
    if config.max_new_tokens is not None:
        _require(config.max_new_tokens >= 1, "max_new_tokens", config.max_new_tokens, "null or an integer >= 1")
    _require(config.wandb.mode in WANDB_MODES, "wandb.mode", config.wandb.mode, ", ".join(WANDB_MODES))
    _require(config.feature_cache_gb > 0, "feature_cache_gb", config.feature_cache_gb, "a size in GB > 0")
    if config.objective is not None:
        _require(config.objective.count("/") == 1, "objective", config.objective,
                 "benchmark/metric, e.g. eventhallusion/binary_acc")

    from ..backbones.base import resolve_device, resolve_dtype

    stop = config.stop
    settings = OmegaConf.to_container(cfg.pruner.settings, resolve=True)  # keys a ++ added too (to_object drops them)
    try:
        combination = resolve_combination(
            config.model.backbone, config.pruner.name, stop.mode, config.ratio, mu_s=stop.mu_s, mu_t=stop.mu_t,
            gamma=stop.gamma, seed=config.seed, settings=settings, path=config.model.path,
            variant=config.pruner.variant, stop_options=stop.options())
        dtype = str(resolve_dtype(config.model.dtype, resolve_device(config.model.device))).removeprefix("torch.")
    except (CombinationError, ValueError, RuntimeError) as err:  # RuntimeError: torch's word for a bad device
        raise ConfigError(str(err)) from None
    return RunSpec(config=config, combination=combination, tasks=_task_set(config.tasks),
                   dtype=dtype, limit=limit)
