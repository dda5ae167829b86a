#!/usr/bin/env python
"""Sink-score heat map of one video: where the backbone's attention sinks sit on the LLM token grid.

    python scripts/sink_heatmap.py clip.mp4 --model llava_ov --out results/figures/sink_heatmap.png
    python scripts/sink_heatmap.py --model tiny_llava_ov      # a synthetic smoke video (built on demand)

Runs the vision tower once (the same capture the pruners use), computes s = sink_score(A, gamma) over
the sampled frames and plots the middle frame, s on the h x w grid, and the two overlaid. On a tiny
random-weight twin the map is a pipeline check only: its attention means nothing.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sinktop_eval.backbones import load_backbone
from sinktop_eval.report.plots import sink_heatmap
from sinktop_eval.pruning import sink_score


def default_video() -> Path:
    """The first EventHallusion-style smoke clip (a constant bright patch: a planted sink)."""
    from sinktop_eval.benchmarks.smoke_data import ensure_smoke_data

    root = ensure_smoke_data()
    return sorted((root / "EventHallusion" / "videos").rglob("*.mp4"))[0]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", default=None, help="video file (default: a synthetic smoke clip)")
    parser.add_argument("--model", default="tiny_llava_ov", help="backbone name or checkpoint dir (default: tiny_llava_ov)")
    parser.add_argument("--path", default=None, help="local checkpoint directory for a registered backbone")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--gamma", type=float, default=1.1)
    parser.add_argument("--out", default="results/figures/sink_heatmap.png")
    args = parser.parse_args(argv)

    video = Path(args.video) if args.video else default_video()
    backbone = load_backbone(args.model, path=args.path)
    prepared = backbone.prepare(video, "Describe the video.", frames=args.frames)
    with torch.no_grad():
        vision = backbone.encode(prepared)
    sink = sink_score(vision.attn, gamma=args.gamma).float().cpu()  # (n,)
    frames = prepared.video.frames  # (T, H, W, 3)
    out = Path(args.out)
    title = f"{backbone.name}: {video.name} ({vision.attn.shape[0]} LLM frames, gamma={args.gamma})"
    sink_heatmap(frames[len(frames) // 2], sink.numpy(), vision.grid, out, title=title)
    top = torch.topk(sink, k=min(5, sink.numel()))
    h, w = vision.grid
    summary = {"video": str(video), "backbone": backbone.name, "grid": [h, w],
               "top_sink_positions": [[int(i) // w, int(i) % w, round(float(v), 4)] for v, i in zip(top.values, top.indices)]}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"wrote {out} (top sinks as [row, col, s]: {summary['top_sink_positions']})")
    return out


if __name__ == "__main__":
    main()
