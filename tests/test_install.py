"""A non-editable install works from any directory: `pip install .` into a fresh venv, then the three user
commands (the runner, lmms-eval's CLI with our model and tasks, the tables) run outside the repository.

The fresh venv takes the heavy dependencies (torch, transformers, lmms-eval, ...) from the project venv
through a .pth line, so only the project itself is installed into it, as a wheel built from the checkout
(`--no-deps`, pip's usual isolated build). A .pth line adds a folder without processing the .pth files in it, so the project venv's
editable finder never loads: everything of sinktop_eval is imported from the fresh venv's site-packages.
"""
from __future__ import annotations

import os
import subprocess
import sysconfig
import venv
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
DROPPED_ENV = ("PYTHONPATH", "SINKTOP_JUDGE_URL", "SINKTOP_JUDGE_MODEL", "OPENAI_API_URL", "SINKTOP_DATA_ROOT")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The fresh venv's python, with sinktop-eval installed from a wheel of this checkout."""
    root = tmp_path_factory.mktemp("install")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(REPO)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def run(python: Path, args: list[str], cwd: Path, smoke_root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update({"SINKTOP_SMOKE_DIR": str(smoke_root), "SINKTOP_DATA_ROOT": "builtin:smoke", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
                "PATH": f"{python.parent}{os.pathsep}{env.get('PATH', '')}"})
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_package_ships_its_configs_tasks_and_paper_numbers(installed, tmp_path, smoke_root):
    probe = run(installed, ["-c", "import sinktop_eval, sinktop_eval.resources as r; "
                                  "print(sinktop_eval.__file__); print(r.CONFIG_DIR); print(r.TASKS_DIR); "
                                  "print(r.PAPER_REFERENCE.is_file())"], tmp_path, smoke_root)
    assert probe.returncode == 0, probe.stderr
    package, configs, tasks, paper = probe.stdout.split()
    site = str(installed.parent.parent)
    assert package.startswith(site) and configs.startswith(site) and tasks.startswith(site), probe.stdout
    assert not package.startswith(str(REPO)) and paper == "True"
    assert (Path(configs) / "pruner" / "holitom.yaml").is_file() and (Path(configs) / "__init__.py").is_file()
    assert (Path(tasks) / "eventhallusion" / "utils.py").is_file() and (Path(tasks) / "_placeholder.jsonl").is_file()
    assert (Path(tasks) / "argus" / "judge_prompt.md").is_file() and len(list((Path(tasks) / "argus" / "examples")
                                                                            .glob("*.md"))) == 4


def test_runner_lmms_eval_cli_and_tables_run_outside_the_repository(installed, tmp_path, smoke_root):
    out = tmp_path / "runs"
    runner = run(installed, ["-m", "sinktop_eval", "+model=tiny_qwen25vl", "+pruner=holitom", "limit=1", "frames=4",
                             "max_new_tokens=2", "wandb.mode=disabled", f"output_dir={out}"], tmp_path, smoke_root)
    assert runner.returncode == 0, runner.stderr[-3000:]
    [results] = list(out.glob("*/results.csv"))
    rows = pd.read_csv(results)
    assert set(rows["benchmark"].dropna()) == {"eventhallusion", "videocomp", "vcgbench", "mvbench", "argus"}

    tasks_dir = run(installed, ["-m", "sinktop_eval.resources", "tasks"], tmp_path, smoke_root).stdout.strip()
    cli = run(installed, ["-m", "lmms_eval", "eval", "--model", "sinktop", "--model_args",
                          "backbone=tiny_llava_ov,pruner=visionzip,frames=4,max_new_tokens=2", "--tasks",
                          "sinktop_mvbench_local", "--include_path", tasks_dir, "--limit", "1",
                          "--output_path", str(tmp_path / "lmms")],
              tmp_path, smoke_root)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "sinktop_mvbench_local" in cli.stdout

    tables = run(installed, ["-m", "sinktop_eval.tables", str(out), "--out", str(tmp_path / "tables")], tmp_path,
                 smoke_root)
    assert tables.returncode == 0, tables.stderr[-3000:]
    assert "Table 8: Qwen2.5-VL" in (tmp_path / "tables" / "tables.md").read_text()
