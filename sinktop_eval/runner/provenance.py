"""What produced a result: package versions, git commit, machine — written into every run directory."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("sinktop-eval", "torch", "torchvision", "transformers", "lmms-eval", "hydra-core", "pandas", "wandb",
            "decord", "numpy", "accelerate", "datasets")
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # git looks upward from here: a checkout has a commit, a wheel none


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(root: Path = PACKAGE_DIR) -> dict[str, str | bool | None]:
    """Commit hash and whether the tree had uncommitted changes (None outside a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def code_version() -> str:
    """'<version>+g<short hash>[.dirty]' — the results CSV's code_version column."""
    from .. import __version__

    state = git_state()
    if not state["commit"]:
        return __version__
    return f"{__version__}+g{state['commit'][:10]}{'.dirty' if state['dirty'] else ''}"


def environment_report() -> dict:
    import torch

    return {"packages": package_versions(), "git": git_state(), "code_version": code_version(),
            "python": platform.python_version(), "platform": platform.platform(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
