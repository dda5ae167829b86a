"""scripts/bench_pruners.py runs end to end on a toy size and prints only what it measured itself."""
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bench_pruners.py"


@pytest.fixture(scope="module")
def bench_output():
    done = subprocess.run([sys.executable, str(SCRIPT), "--frames", "2", "4", "--grid", "2", "3", "--dim", "8",
                           "--repeats", "1", "--device", "cpu", "--pruners", "visionzip", "holitom", "dpc_knn",
                           "--modes", "off", "on", "hard"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_prints_the_frame_series_and_every_applicable_combination(bench_output):
    lines = bench_output.splitlines()
    header = next(line for line in lines if line.startswith("pruner"))
    assert all(word in header for word in ("median ms", "cpu ms", "ms/frame", "kept", "peak mem"))
    rows = [line.split() for line in lines if line.split()[:1] in (["visionzip"], ["holitom"], ["dpc_knn"])]
    # dpc_knn has no attention: only "off"; the attention pruners get off, on and hard; one row per T
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
        (name, mode, T) for name, mode in [("visionzip", "off"), ("visionzip", "on"), ("visionzip", "hard"),
                                           ("holitom", "off"), ("holitom", "on"), ("holitom", "hard"),
                                           ("dpc_knn", "off")] for T in ("2", "4"))
    assert all(r[-1].endswith("x") or r[-1] == "n/a" for r in rows)


def test_reports_no_figures_measured_elsewhere(bench_output):
    text = bench_output.lower()
    assert "official" not in text and "speed-up" not in text and "speedup" not in text
    assert "measured by this script only" in text
