"""Everything the tasks need, settled before any model loads: data roots, the judge, the built tasks.

Building the tasks here (lmms-eval reads every annotation file while building) means a missing data
folder, a malformed annotation file or an unreachable judge stops the run in seconds, with one line,
instead of after a 7B checkpoint has loaded.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ..benchmarks import judge
from ..benchmarks.common import BUILTIN_SMOKE, DATA_ROOT_ENV, SKIP_MISSING_ENV
from ..files import first_line
from ..resources import TASKS_DIR
from .config import ConfigError, RunSpec

# what preparing a run may set in os.environ (restored afterwards, so sweep jobs do not leak into each other)
RUN_ENV_KEYS = (DATA_ROOT_ENV, "HF_HOME", SKIP_MISSING_ENV)
# lmms-eval's own VideoChatGPT tasks post to their judge themselves (sinktop_videochatgpt_* use ours)
BUILTIN_JUDGED_PREFIX = "videochatgpt_"


class TaskBuildError(RuntimeError):
    """lmms-eval could not build a task (typically a built-in whose dataset is not in the HF cache)."""


def root_cause(err: BaseException) -> BaseException:
    """The innermost error behind lmms-eval's wrappers (tenacity's RetryError, chained exceptions)."""
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        attempt = getattr(err, "last_attempt", None)  # tenacity.RetryError
        inner = attempt.exception() if attempt is not None else (err.__cause__ or err.__context__)
        if inner is None:
            break
        err = inner
    return err


@dataclass
class TaskEnvironment:
    judge_model: str | None
    task_manager: object  # lmms_eval.tasks.TaskManager, reused by simple_evaluate


def leaf_task_names(task_dict: dict) -> list[str]:
    """Leaf task names of a (nested) lmms-eval task dict; group keys are ConfigurableGroup objects."""
    names = []
    for key, value in task_dict.items():
        if isinstance(value, dict):
            names.extend(leaf_task_names(value))
        else:
            names.append(key if isinstance(key, str) else getattr(key, "group_name", str(key)))
    return names


def configure_judge(spec: RunSpec) -> judge.JudgeConfig:
    """The run's judge: config values over SINKTOP_JUDGE_* (every judged task of ours uses it)."""
    settings = spec.config.judge
    config = judge.configure(judge.JudgeConfig.from_env(url=settings.url, key=settings.key, model=settings.model))
    judge.new_run()
    return config


def check_judge_reachable(config: judge.JudgeConfig) -> None:
    """One uncached request: a wrong URL or key fails now, not after hours of generation."""
    probe = judge.JudgeClient(replace(config, use_cache=False, retries=1, timeout_s=20.0))
    reply = probe.ask("Reply with the single word OK.", max_tokens=4)
    if not reply.ok:
        raise ConfigError(f"judge unreachable at {config.endpoint} (model {config.model}); fix judge.url / "
                          f"judge.key / judge.model (or SINKTOP_JUDGE_URL/_KEY/_MODEL), or unset judge.url to run "
                          f"without judge metrics")


def prepare_task_environment(spec: RunSpec) -> TaskEnvironment:
    from lmms_eval.tasks import TaskManager, get_task_dict

    data_root = spec.tasks.data_root or spec.config.data_root  # a task set's own data (smoke) wins
    if data_root:
        os.environ[DATA_ROOT_ENV] = data_root if data_root == BUILTIN_SMOKE else str(Path(data_root).expanduser().resolve())
    # lmms-eval's built-in video tasks resolve their video folders from HF_HOME (and misbehave without it)
    os.environ.setdefault("HF_HOME", str(Path("~/.cache/huggingface").expanduser()))
    os.environ[SKIP_MISSING_ENV] = "1" if spec.config.skip_bad_videos else "0"  # the run's setting, not the shell's
    config = configure_judge(spec)

    manager = TaskManager(include_path=[str(TASKS_DIR)])
    try:
        leaves = leaf_task_names(get_task_dict(list(spec.tasks.names), manager))
    except SystemExit as err:  # the tasks' own one-line data errors (DataRootError)
        if not str(err).strip():
            raise
        raise TaskBuildError(f"{err} (or pass data_root=/path/to/benchmarks)") from None
    except Exception as err:  # noqa: BLE001 - reported as one line naming the tasks and the likely fix
        cause = root_cause(err)
        raise TaskBuildError(f"building tasks {list(spec.tasks.names)} failed: {type(cause).__name__}: "
                             f"{first_line(cause)} -- "
                             "lmms-eval's built-in tasks (open_ended, mcqa) fetch their datasets from the HF hub into "
                             "$HF_HOME: run once with network (and a token for gated sets), or choose tasks whose "
                             "data is local (hallucination, compositional, open_ended_local, smoke)") from err
    if any(name.startswith(BUILTIN_JUDGED_PREFIX) for name in leaves):
        raise ConfigError(f"tasks {list(spec.tasks.names)} include lmms-eval's own VideoChatGPT tasks, whose judge "
                          "code bypasses sinktop's judge (no cache, its own endpoint variables, failures scored 0); use "
                          "sinktop_videochatgpt_gen/_temporal/_consistency (task set open_ended) instead")
    if config.configured:
        check_judge_reachable(config)
    return TaskEnvironment(judge_model=config.model if config.configured else None, task_manager=manager)


@contextmanager
def task_environment(spec: RunSpec) -> Iterator[TaskEnvironment]:
    """`prepare_task_environment` for the duration of one run; the process environment is restored after."""
    saved = {key: os.environ.get(key) for key in RUN_ENV_KEYS}
    try:
        yield prepare_task_environment(spec)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        judge.configure(None)
