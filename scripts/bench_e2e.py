#!/usr/bin/env python
"""End-to-end cost of pruning at the 7B shapes: vision encode, pruning, LLM prefill, decode, memory.

    python scripts/bench_e2e.py                                   # CPU: real-shape twins, 2 + 2 layers, bf16
    python scripts/bench_e2e.py --device cuda --full-depth        # GPU: the full 7B shapes, bf16, random weights
    python scripts/bench_e2e.py --backbones real_shape_llava_ov --pruners visionzip --ratios 0.1 --repeats 5

For every backbone x pruner x SToP (off / the paper's mu) at r in {0.1, 0.25}, plus dense (r = 1), one
448x448 synthetic video (moving shapes, a constant sink corner) goes through the adapter's steps as
``Backbone.generate`` runs them: ``prepare`` and ``encode`` once per backbone (the vision encoder does
not depend on the pruner, so it is timed once, over the repeats), then per combination the pruner,
``splice`` and HF ``generate`` with the adapter's greedy settings. Each timing runs ``--warmup``
unmeasured times (kernels are prepared per sequence length) and then
``--repeats`` measured times; the median and the fastest of each timing are written (on a shared machine
other load only ever adds time, so the summary and the plot use the fastest; ``load_avg_1min`` is
recorded per row):
vision encode (incl. the importance capture), pruning (pruner + building the shorter LLM input),
the pruner alone, LLM prefill (to the first new token), decode per new token, peak memory (CUDA max
allocated / process RSS peak), dense and kept visual tokens, newline tokens, and the analytic prefill
FLOPs (``sinktop_eval.backbones.flops``) at the loaded depth and at the 7B's 28 layers.

Outputs, under ``--out`` (default results/bench/): ``e2e_<device>_<depth>.csv`` (one row per combination,
every row carrying the machine description), ``e2e_<device>_<depth>.json`` (machine and settings),
``e2e_<device>_<depth>.png`` (measured prefill time against analytic prefill FLOPs). Speed-ups printed
at the end compare rows of this one run on this one machine only.

Weights are random (twins built offline, no download): costs are real, answers are not. At full depth
each twin is ~17 GB in bfloat16 on disk; ``--cleanup`` (default with --full-depth) deletes each after
use so three fit on a 64 GB disk. Expect ~1.5 min per backbone to build and load on a 16-core machine.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinktop_eval.backbones import load_backbone  # noqa: E402
from sinktop_eval.backbones.flops import prefill_flops  # noqa: E402
from sinktop_eval.backbones.real_shape import FULL_DEPTH  # noqa: E402
from sinktop_eval.backbones.stats import PeakMemory, synchronize  # noqa: E402
from sinktop_eval.backbones.tiny import tiny_checkpoint  # noqa: E402
from sinktop_eval.pruning import build_pruner  # noqa: E402
from sinktop_eval.synthetic_video import Scene, ShapeTrack, write_scene  # noqa: E402

BACKBONES = ("real_shape_llava_ov", "real_shape_llava_video", "real_shape_qwen25vl")
PRUNERS = ("visionzip", "fastvid", "holitom")
PAPER_MU = {"visionzip": (0.03, 0.0), "fastvid": (0.02, 0.0), "holitom": (0.04, 0.07)}  # SToP on (LLaVA-OV)
PROMPT = "Describe what happens in the video."
FLOPS_KEYS = ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size")


def machine_description(device: torch.device) -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory_gb = None
    try:
        with open("/proc/meminfo") as handle:
            memory_gb = round(int(next(line for line in handle if line.startswith("MemTotal")).split()[1]) / 1e6, 1)
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    import transformers

    return {
        "host_cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "ram_gb": memory_gb,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "git": commit,
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def bench_video(directory: Path, seconds: float) -> Path:
    """448x448 at 8 fps: Qwen2.5-VL keeps the size (a 32x32 patch grid), LLaVA resizes to 384x384."""
    frames = max(2, round(seconds * 8))
    scene = Scene(num_frames=frames, height=448, width=448, fps=8.0, seed=17, sink_box=(0, 0, 96, 96), shapes=(
        ShapeTrack("red", "square", x=80, y=300, vx=320 / frames, size=40),
        ShapeTrack("blue", "circle", x=320, y=80, vy=300 / frames, size=36),
    ))
    directory.mkdir(parents=True, exist_ok=True)
    return write_scene(directory / "bench_448.mp4", scene)


def combinations(pruners, ratios):
    yield "dense", 1.0, "off", 0.0, 0.0
    for name in pruners:
        for ratio in ratios:
            yield name, ratio, "off", 0.0, 0.0
            mu_s, mu_t = PAPER_MU.get(name, (0.0, 0.0))
            if mu_s or mu_t:
                yield name, ratio, "on", mu_s, mu_t


def time_pruner(pruner, vision, repeats: int, device: torch.device) -> float:
    def once():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        pruner(vision.features, vision.attn, keys=vision.keys, grid=vision.grid, frame_features=vision.frame_features)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    once()  # warm-up
    samples = [once() for _ in range(max(repeats, 3))]
    return statistics.median(samples), min(samples)


class _FirstTokenClock:
    """A ``generate`` streamer that only timestamps: the 1st put is the prompt, the 2nd the first new token."""

    def __init__(self) -> None:
        self.puts: list[float] = []

    def put(self, value) -> None:
        self.puts.append(time.perf_counter())

    def end(self) -> None:
        pass


def timed_generation(backbone, prepared, vision, pruner, new_tokens: int) -> dict:
    """What ``Backbone.generate`` does after the vision encoder, timed the same way: pruner + splice, then
    HF ``generate`` with the adapter's greedy config, prefill = until the first new token."""
    device = backbone.device
    memory = PeakMemory(device)
    memory.start()
    synchronize(device)
    began = time.perf_counter()
    pruned = pruner(vision.features, vision.attn, keys=vision.keys, grid=vision.grid,
                    frame_features=vision.frame_features)
    spliced = backbone.splice(prepared, vision, pruned)
    synchronize(device)
    spliced_at = time.perf_counter()
    clock = _FirstTokenClock()
    with torch.no_grad():
        output = backbone.model.generate(**spliced, generation_config=backbone._greedy(new_tokens), streamer=clock)
    synchronize(device)
    finished = time.perf_counter()
    first = clock.puts[1] if len(clock.puts) > 1 else finished
    peak, kind = memory.read()
    prompt = int(spliced["input_ids"].shape[1])
    placeholders = int((spliced["input_ids"] == backbone.video_token_id).sum())
    generated = int(output.shape[1]) - prompt
    return {"pruning_s": spliced_at - began, "prefill_s": first - spliced_at,
            "decode_per_token_s": (finished - first) / max(generated - 1, 1), "new_tokens": generated,
            "peak_mem_gb": peak, "peak_mem_kind": kind, "kept_visual_tokens": len(pruned),
            "newline_tokens": placeholders - len(pruned), "prompt_tokens": prompt}


def time_vision(backbone, video: Path, args) -> tuple[object, object, dict]:
    """The vision encoder (with the importance capture), once per backbone: it does not depend on the pruner."""
    device = backbone.device
    prepared = backbone.prepare(video, PROMPT, frames=args.frames)
    samples, peaks = [], []
    vision = None
    for attempt in range(args.warmup + args.repeats):
        vision = None
        gc.collect()
        memory = PeakMemory(device)
        memory.start()
        synchronize(device)
        began = time.perf_counter()
        vision = backbone.encode(prepared)
        synchronize(device)
        if attempt >= args.warmup:
            samples.append(time.perf_counter() - began)
            peaks.append(memory.read()[0])
    return prepared, vision, {"vision_s": statistics.median(samples), "vision_min_s": min(samples),
                              "vision_peak_mem_gb": max(peaks)}


def run_backbone(name: str, args, video: Path, machine: dict) -> list[dict]:
    depth = {"layers": None, "vision_layers": None} if args.full_depth else {"layers": args.layers,
                                                                             "vision_layers": args.vision_layers}
    began = time.perf_counter()
    directory = tiny_checkpoint(name, args.seed, **depth)
    built = time.perf_counter() - began
    began = time.perf_counter()
    backbone = load_backbone(name, dtype=args.dtype, device=args.device, path=None, seed=args.seed, **depth)
    loaded = time.perf_counter() - began
    device = backbone.device
    text_config = backbone.text_config
    text_full = SimpleNamespace(**{k: getattr(text_config, k, None) for k in FLOPS_KEYS},
                                num_hidden_layers=FULL_DEPTH[name][0])
    print(f"# {name}: {text_config.num_hidden_layers} decoder + vision layers {depth}, {backbone.dtype} on {device} "
          f"(build/find {built:.1f} s, load {loaded:.1f} s)", flush=True)
    prepared, vision, vision_stats = time_vision(backbone, video, args)
    dense_prompt = int(prepared.inputs["input_ids"].shape[1])
    print(f"vision encode {vision_stats['vision_min_s']:.3f}s (fastest of {args.repeats}), "
          f"{vision.num_tokens} visual tokens, {dense_prompt} prompt tokens dense", flush=True)
    rows = []
    for pruner_name, ratio, stop, mu_s, mu_t in combinations(args.pruners, args.ratios):
        samples = []
        for attempt in range(args.warmup + args.repeats):  # warm-ups: kernels for this sequence length
            pruner = build_pruner(pruner_name, ratio, mu_s=mu_s, mu_t=mu_t)
            result = timed_generation(backbone, prepared, vision, pruner, args.new_tokens)
            if attempt >= args.warmup:
                samples.append(result)
        last = samples[-1]
        timed = ("pruning_s", "prefill_s", "decode_per_token_s")
        medians = {key: statistics.median(s[key] for s in samples) for key in timed}
        minima = {key.replace("_s", "_min_s"): min(s[key] for s in samples) for key in timed}
        pruner_s, pruner_min_s = time_pruner(build_pruner(pruner_name, ratio, mu_s=mu_s, mu_t=mu_t), vision,
                                             args.repeats, device)
        row = {
            "backbone": name, "pruner": pruner_name, "stop": stop, "mu_s": mu_s, "mu_t": mu_t, "ratio": ratio,
            "frames": args.frames, "decoder_layers": text_config.num_hidden_layers,
            "vision_layers": depth["vision_layers"] or FULL_DEPTH[name][1],
            "dtype": str(backbone.dtype).removeprefix("torch."), "device": str(device), "repeats": args.repeats,
            "dense_visual_tokens": vision.num_tokens, "kept_visual_tokens": last["kept_visual_tokens"],
            "newline_tokens": last["newline_tokens"], "prompt_tokens": last["prompt_tokens"],
            "prompt_tokens_dense": dense_prompt,
            "vision_s": vision_stats["vision_s"], **medians, "pruner_s": pruner_s,
            "vision_min_s": vision_stats["vision_min_s"], **minima, "pruner_min_s": pruner_min_s,
            "new_tokens": last["new_tokens"],
            "peak_mem_gb": max([vision_stats["vision_peak_mem_gb"]] + [s["peak_mem_gb"] for s in samples]),
            "peak_mem_kind": last["peak_mem_kind"],
            "prefill_tflops": prefill_flops(text_config, last["prompt_tokens"]) / 1e12,
            "prefill_tflops_dense": prefill_flops(text_config, dense_prompt) / 1e12,
            "prefill_tflops_28_layers": prefill_flops(text_full, last["prompt_tokens"]) / 1e12,
            "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            **{f"machine_{k}": v for k, v in machine.items() if k != "load_avg_1min"},
        }
        rows.append(row)
        print(f"{pruner_name:<9} r={ratio:<4} SToP {stop:<3} kept {row['kept_visual_tokens']:>5}"
              f"(+{row['newline_tokens']} nl)  prune {row['pruning_min_s'] * 1e3:.1f}ms"
              f" (pruner {pruner_min_s * 1e3:.1f}ms)  prefill {row['prefill_min_s']:.3f}s  "
              f"decode {row['decode_per_token_min_s'] * 1e3:.1f}ms/tok  peak {row['peak_mem_gb']:.2f}GB  "
              f"{row['prefill_tflops']:.2f} TFLOPs  (fastest of {args.repeats}; load {row['load_avg_1min']})", flush=True)
    del backbone, vision, prepared
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if args.cleanup:
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def summarise(frame) -> list[str]:
    """Speed-ups within this run (fastest of the repeats): prefill vs dense, and SToP's added time vs
    pruning + prefill."""
    lines = []
    for backbone, group in frame.groupby("backbone"):
        dense = group[group.pruner == "dense"].iloc[0]
        for _, row in group[group.pruner != "dense"].iterrows():
            line = (f"{backbone} {row.pruner} r={row.ratio} SToP {row.stop}: prefill "
                    f"{dense.prefill_min_s / row.prefill_min_s:.1f}x faster than dense "
                    f"(analytic {dense.prefill_tflops / row.prefill_tflops:.1f}x)")
            if row.stop == "on":
                off = group[(group.pruner == row.pruner) & (group.ratio == row.ratio) & (group.stop == "off")].iloc[0]
                added = row.pruner_min_s - off.pruner_min_s
                line += (f"; SToP adds {added * 1e3:+.2f} ms to the pruner = "
                         f"{100 * added / (off.pruning_min_s + off.prefill_min_s):+.2f}% of pruning + prefill")
            lines.append(line)
    return lines


def plot(frame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"dense": "o", "visionzip": "s", "fastvid": "^", "holitom": "D"}
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    colours = dict(zip(sorted(frame.backbone.unique()), ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=False))
    for (backbone, pruner, stop), group in frame.groupby(["backbone", "pruner", "stop"]):
        ax.scatter(group.prefill_tflops, group.prefill_min_s, color=colours[backbone], marker=markers.get(pruner, "x"),
                   facecolors="none" if stop == "on" else colours[backbone], s=46,
                   label=f"{backbone.removeprefix('real_shape_')} {pruner}{' +SToP' if stop == 'on' else ''}")
    for backbone, group in frame.groupby("backbone"):  # time proportional to FLOPs, through the dense point
        dense = group[group.pruner == "dense"].iloc[0]
        xs = [group.prefill_tflops.min() * 0.8, dense.prefill_tflops * 1.1]
        ax.plot(xs, [x * dense.prefill_min_s / dense.prefill_tflops for x in xs], ls="--", lw=0.8,
                color=colours[backbone])
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    steps = [m * 10.0 ** e for e in range(-3, 4) for m in (1, 2, 5)]
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(FixedLocator(steps))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("analytic LLM prefill (TFLOPs, loaded depth)")
    ax.set_ylabel("measured LLM prefill (s, fastest of the repeats)")
    ax.set_title(title + "\ndashed: time proportional to FLOPs through each dense point", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--full-depth", action="store_true", help="the 7B's 28 decoder layers and full vision tower")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the twins (without --full-depth)")
    parser.add_argument("--vision-layers", type=int, default=2)
    parser.add_argument("--backbones", nargs="*", default=list(BACKBONES))
    parser.add_argument("--pruners", nargs="*", default=list(PRUNERS))
    parser.add_argument("--ratios", nargs="*", type=float, default=[0.1, 0.25])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the synthetic video")
    parser.add_argument("--new-tokens", type=int, default=8, help="greedy tokens per generation (decode timing)")
    parser.add_argument("--repeats", type=int, default=3, help="measured generations per combination (median)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured generations per combination first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cleanup", action=argparse.BooleanOptionalAction, default=None,
                        help="delete each twin after use (default: on with --full-depth)")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench"))
    parser.add_argument("--replot", default=None, metavar="CSV", help="only redraw the plot of an earlier run's CSV")
    args = parser.parse_args(argv)
    if args.replot:
        import pandas as pd

        frame = pd.read_csv(args.replot)
        first = frame.iloc[0]
        depth = f"{first.decoder_layers} decoder + {first.vision_layers} vision layers"
        where = first.machine_gpu if isinstance(first.machine_gpu, str) and first.machine_gpu else first.machine_host_cpu
        plot(frame, Path(args.replot).with_suffix(".png"),
             f"{where} ({first['machine_torch_threads']} threads), {first['dtype']}, {depth}, {first['frames']} frames "
             "(one run, one machine)")
        return 0
    if args.cleanup is None:
        args.cleanup = args.full_depth
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"e2e_{device.type}_{'full' if args.full_depth else f'L{args.layers}V{args.vision_layers}'}"
    machine = machine_description(device)
    video = bench_video(out / ".video", args.seconds)
    print(f"# {machine['gpu'] or machine['host_cpu']} ({machine['torch_threads']} threads), torch {machine['torch']}, "
          f"transformers {machine['transformers']}; {args.frames} frames of {video.name}, {args.dtype}", flush=True)
    rows = []
    for name in args.backbones:
        rows += run_backbone(name, args, video, machine)
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame.to_csv(out / f"{tag}.csv", index=False)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    summary = summarise(frame)
    (out / f"{tag}.json").write_text(json.dumps({"machine": machine, "settings": settings, "summary": summary},
                                                indent=2) + "\n")
    depth = "full depth" if args.full_depth else f"{args.layers} decoder + {args.vision_layers} vision layers"
    plot(frame, out / f"{tag}.png", f"{machine['gpu'] or machine['host_cpu']} ({machine['torch_threads']} threads), "
                                    f"{args.dtype}, {depth}, {args.frames} frames (one run, one machine)")
    shutil.rmtree(out / ".video", ignore_errors=True)
    print("\n".join(summary))
    print(f"wrote {out / tag}.csv / .json / .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
