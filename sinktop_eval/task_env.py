"""Prepare what the tasks need before any model loads: data roots and the judge endpoint."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .config import RunSpec


@dataclass
class TaskEnvironment:
    judge_model: str | None


def prepare_task_environment(spec: RunSpec) -> TaskEnvironment:
    if spec.data_root:
        os.environ["SINKTOP_DATA_ROOT"] = str(spec.data_root)
    judge_model = spec.judge.get("model") or os.environ.get("SINKTOP_JUDGE_MODEL")
    return TaskEnvironment(judge_model=judge_model)
