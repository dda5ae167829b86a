"""The sink heat map script on a tiny twin: a PNG plus the top sink positions, on the smoke clip whose
top-left corner holds a constant bright patch (the planted sink)."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sink_heatmap.py"


@pytest.mark.parametrize("model", ["tiny_qwen25vl", "tiny_llava_ov"])
def test_heatmap_png_and_top_sinks(model, tmp_path, smoke_root, monkeypatch):
    monkeypatch.setenv("SINKTOP_SMOKE_DIR", str(smoke_root))
    spec = importlib.util.spec_from_file_location("sink_heatmap", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = script.main(["--model", model, "--frames", "8", "--out", str(tmp_path / "map.png")])
    assert out.stat().st_size > 5000
    summary = json.loads(out.with_suffix(".json").read_text())
    h, w = summary["grid"]
    top = summary["top_sink_positions"]
    assert len(top) == 5 and top[0][2] == 1.0  # min-max normalised: the strongest position scores 1
    assert all(0 <= r < h and 0 <= c < w and 0 <= s <= 1 for r, c, s in top)
    assert [s for _, _, s in top] == sorted((s for _, _, s in top), reverse=True)
