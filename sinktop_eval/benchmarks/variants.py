"""Thin variants of lmms-eval's built-in tasks: the built-in's own YAML with a few keys replaced.

A task YAML under tasks/ names the built-in file and lists only what differs::

    task: sinktop_videomme
    class: !function sinktop_eval.benchmarks.variants.BuiltinVariant
    builtin: videomme/videomme.yaml          # relative to lmms_eval/tasks/
    doc_to_text: !function utils.doc_to_text

lmms-eval's ``include:`` takes a file path, and the installed lmms-eval's location differs between
machines, so the include is done here (written by hand for that reason): the built-in YAML is loaded with
lmms-eval's own loader (its ``!function`` references resolve against its folder) and the variant's keys
replace its keys. The task keeps the built-in's dataset, prompts and scoring wherever the variant does not
say otherwise; nothing of lmms-eval is copied or changed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lmms_eval.api.task import ConfigurableTask

VARIANT_KEYS = ("class", "builtin")  # ours, not lmms-eval TaskConfig fields


def builtin_config(relative: str) -> dict[str, Any]:
    """The fully loaded config of an lmms-eval built-in task file (``relative`` to lmms_eval/tasks/)."""
    import lmms_eval.tasks
    from lmms_eval.utils import load_yaml_config

    path = Path(lmms_eval.tasks.__file__).parent / relative
    if not path.is_file():
        raise FileNotFoundError(f"lmms-eval has no built-in task file {relative} (looked at {path}); "
                                f"this sinktop task needs lmms-eval's version of it (see constraints.txt)")
    # several built-ins (videochatgpt, mlvu) read HF_HOME when lmms-eval imports their utils
    os.environ.setdefault("HF_HOME", str(Path("~/.cache/huggingface").expanduser()))
    return load_yaml_config(yaml_path=str(path), mode="full")


def variant_config(config: dict[str, Any]) -> dict[str, Any]:
    """A variant's task config: the built-in's keys, replaced by the variant's (minus ``class``/``builtin``)."""
    ours = {k: v for k, v in config.items() if k not in VARIANT_KEYS}
    return {**builtin_config(config["builtin"]), **ours}


class BuiltinVariant(ConfigurableTask):
    """What lmms-eval builds for a variant YAML (it calls ``cls(config=<the YAML's keys>)``)."""

    def __init__(self, config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(config=variant_config(config), **kwargs)
