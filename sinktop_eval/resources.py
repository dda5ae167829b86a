"""Where the shipped data lives: the Hydra configs, the lmms-eval task folders and the paper's numbers.

They are folders at the top of the repository (``configs/``, ``tasks/``, ``results/paper/``) that the
build maps into this package as ``sinktop_eval.configs``, ``sinktop_eval.tasks`` and
``sinktop_eval.paper`` (pyproject.toml ``package-dir``), so a checkout, an editable install and a wheel
all find them the same way, by import, never by guessing a repository root.

    python -m sinktop_eval.resources tasks     # prints the folder, e.g. for lmms-eval --include_path
"""
from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path


def _folder(package: str) -> Path:
    return Path(str(files(package)))


CONFIG_DIR = _folder("sinktop_eval.configs")
TASKS_DIR = _folder("sinktop_eval.tasks")
PAPER_REFERENCE = _folder("sinktop_eval.paper") / "paper_reference.csv"
FOLDERS = {"configs": CONFIG_DIR, "tasks": TASKS_DIR, "paper": PAPER_REFERENCE.parent}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in FOLDERS:
        sys.exit(f"usage: python -m sinktop_eval.resources {{{'|'.join(FOLDERS)}}}")
    print(FOLDERS[sys.argv[1]])
