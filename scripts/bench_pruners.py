#!/usr/bin/env python
"""Time every pruner, SToP off and on, on one synthetic video at paper scale, for several frame counts.

    python scripts/bench_pruners.py                      # T = 32, 64, 128; n = 196; D = 3584; float32 on CPU
    python scripts/bench_pruners.py --frames 32 --repeats 20 --pruners visionzip holitom
    python scripts/bench_pruners.py --modes off on hard redistribute --csv bench.csv
    python scripts/bench_pruners.py --device cuda        # float16 on GPU (default dtype there)

Everything printed is measured here, by this script, on this machine, at the time it runs (its load
is printed too): no figure from elsewhere is shown or compared with. Per (pruner, stop mode, T) it
reports the median and the fastest of ``--repeats`` timed calls after one warm-up, the kept tokens, the
time per frame (so linear growth in T shows as a flat row) and the peak extra memory of one call,
as a multiple of the feature tensor's size.

Peak memory on CPU: each T runs once more in a child process whose allocator returns every large
block to the OS (MALLOC_MMAP_THRESHOLD_), and the peak resident size of one call is read from
/proc/self/status after resetting it (/proc/self/clear_refs); on CUDA, torch's peak allocation counter.
Where neither is available the column reads n/a.

The synthetic video has what real ones have and what the pruners react to: a few scenes (so DySeg and
PruneVid cut), a static background with per-frame noise (so HoliTom finds static windows), moving
objects, and sink positions that draw high attention in every frame.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sinktop_eval.pruning import PRUNERS, build_pruner, sink_score  # noqa: E402
from sinktop_eval.pruning.defaults import stop_parameters  # noqa: E402


def synthetic_video_tokens(T=32, h=14, w=14, D=3584, d_k=72, scenes=3, seed=0, dtype=torch.float32, device="cpu"):
    """(features (T, n, D), attn (T, n), keys (T, n, d_k)) with scenes, static background, motion, sinks."""
    g = torch.Generator().manual_seed(seed)
    n = h * w
    scene_of_frame = torch.arange(T) * scenes // T  # (T,)
    # each scene: a component shared by all its tokens (as ViT features have; it makes frame-level
    # features similar within a scene, so DySeg cuts at scene changes) plus per-position background
    backgrounds = torch.randn(scenes, 1, D, generator=g) + torch.randn(scenes, n, D, generator=g)  # (S, n, D)
    X = backgrounds[scene_of_frame] + 0.3 * torch.randn(T, n, D, generator=g)  # (T, n, D) static-ish: cos ~ 0.9
    # a moving object: a 3x3 block (smaller on tiny grids) that walks along the diagonal, fresh features
    size = max(1, min(3, h - 1, w - 1))
    for t in range(T):
        r0 = c0 = t % max(1, min(h, w) - size)
        rows = torch.arange(r0, r0 + size).view(-1, 1) * w + torch.arange(c0, c0 + size).view(1, -1)
        X[t, rows.reshape(-1)] = torch.randn(size * size, D, generator=g) * 2
    logits = torch.randn(T, n, generator=g)
    sinks = torch.tensor(sorted({0, 1 % n, w % n, n - 1}))  # corner patches draw attention in every frame
    logits[:, sinks] += 4.0
    A = torch.softmax(logits, dim=-1)  # (T, n) rows sum to 1, like attention received
    K = torch.randn(T, n, d_k, generator=g)
    return X.to(device, dtype), A.to(device, dtype), K.to(device, dtype)


def combinations(pruners, modes):
    """(pruner, mode, build_pruner keywords) for every pruner x mode that applies to it."""
    out = []
    for name in pruners:
        for mode in modes:
            try:
                stop = stop_parameters(name, "llava_ov", mode)
            except ValueError:
                continue  # e.g. hard on a pruner without attention: not a combination
            if stop["stop"] != mode:
                continue  # a feature-only pruner resolves "on" to "off": already listed
            out.append((name, mode, {k: v for k, v in stop.items() if k not in ("stop", "mu_source")}))
    return out


def make_pruner(name, ratio, kwargs):
    return build_pruner(name, 1.0 if name == "dense" else ratio, **kwargs)


def time_call(fn, repeats: int, sync) -> tuple[float, float, float, object]:
    """(median wall ms, fastest wall ms, median process CPU ms, result) of ``repeats`` calls after a warm-up.

    CPU time (all threads of this process) is reported too because it is far less sensitive than wall
    time to other processes competing for the same cores."""
    result = fn()  # warm-up
    sync()
    samples, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        sync()
        samples.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(samples) * 1000.0, min(samples) * 1000.0, statistics.median(cpu) * 1000.0, result


def _status(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def memory_probe(args) -> None:
    """Child process: print one JSON line {pruner, stop, T, peak_extra_bytes, feature_bytes} per combination."""
    dtype = getattr(torch, args.dtype or ("float16" if args.device.startswith("cuda") else "float32"))
    T = args.frames[0]
    X, A, K = synthetic_video_tokens(T, *args.grid, D=args.dim, dtype=dtype, device=args.device)
    feature_bytes = X.numel() * X.element_size()
    for name, mode, kwargs in combinations(args.pruners, args.modes):
        prune = make_pruner(name, args.ratio, kwargs)
        del prune(X, A, keys=K, grid=tuple(args.grid)).tokens  # warm-up: one-time allocations are not the pruner's
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            out = prune(X, A, keys=K, grid=tuple(args.grid))
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - before
        else:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # reset the peak resident size to the current one
            before = _status("VmRSS")
            out = prune(X, A, keys=K, grid=tuple(args.grid))
            peak = _status("VmHWM") - before
        del out
        print(json.dumps({"pruner": name, "stop": mode, "T": T, "peak_extra_bytes": peak,
                          "feature_bytes": feature_bytes}), flush=True)


def measure_memory(args, T: int) -> dict:
    """{(pruner, stop): peak extra / feature bytes} for one T, from a child process; {} if unavailable."""
    if not args.device.startswith("cuda") and not (os.path.exists("/proc/self/clear_refs") and os.access("/proc/self/clear_refs", os.W_OK)):
        return {}
    command = [sys.executable, __file__, "--memory-probe", "--frames", str(T), "--grid", *map(str, args.grid),
               "--dim", str(args.dim), "--ratio", str(args.ratio), "--device", args.device,
               "--pruners", *args.pruners, "--modes", *args.modes]
    if args.dtype:
        command += ["--dtype", args.dtype]
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"# memory probe failed at T={T}: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return {}
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {(r["pruner"], r["stop"]): r["peak_extra_bytes"] / r["feature_bytes"] for r in rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--grid", type=int, nargs=2, default=(14, 14), metavar=("H", "W"))
    parser.add_argument("--dim", type=int, default=3584)
    parser.add_argument("--ratio", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None,
                        help="default: float16 on GPU, float32 on CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--pruners", nargs="*", default=list(PRUNERS))
    parser.add_argument("--modes", nargs="*", default=["off", "on"], help="stop modes (off, on, stsp, sttp, hard, redistribute)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--csv", default=None, help="also write the table as CSV here")
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args)
        return
    dtype = getattr(torch, args.dtype or ("float16" if args.device.startswith("cuda") else "float32"))
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    h, w = args.grid
    print(f"# n={h * w} D={args.dim} r={args.ratio} {str(dtype).removeprefix('torch.')} on {args.device} "
          f"({torch.get_num_threads()} CPU threads, {os.cpu_count()} cores, load {load:.2f} at start); "
          f"median (fastest) of {args.repeats} calls after a warm-up; measured by this script only")

    combos = combinations(args.pruners, args.modes)
    rows = {}
    sink_ms = {}
    for T in args.frames:
        X, A, K = synthetic_video_tokens(T, h, w, D=args.dim, dtype=dtype, device=args.device)
        sink_ms[T], _, _, _ = time_call(lambda: sink_score(A), args.repeats, sync)
        for name, mode, kwargs in combos:
            prune = make_pruner(name, args.ratio, kwargs)
            median, fastest, cpu, out = time_call(lambda: prune(X, A, keys=K, grid=(h, w)), args.repeats, sync)
            rows.setdefault((name, mode), {})[T] = {"median_ms": median, "fastest_ms": fastest, "cpu_ms": cpu,
                                                    "kept": len(out)}
            del out
        del X, A, K
        gc.collect()
        if not args.no_memory:
            for key, ratio in measure_memory(args, T).items():
                if key in rows and T in rows[key]:
                    rows[key][T]["peak_extra_x_features"] = ratio

    first = args.frames[0]
    head = (f"{'pruner':<10} {'stop':<12} {'T':>4} {'median ms':>10} {'fastest ms':>11} {'cpu ms':>8} "
            f"{'ms/frame':>9} {'vs T=' + str(first):>8} {'kept':>6} {'peak mem':>9}")
    print(head)
    print("-" * len(head))
    table = []
    for (name, mode), per_t in rows.items():
        base = per_t[first]["median_ms"] / first
        for T in args.frames:
            r = per_t[T]
            growth = (r["median_ms"] / T) / base if base else float("nan")
            mem = r.get("peak_extra_x_features")
            mem_text = f"{mem:.2f}x" if mem is not None else "n/a"
            print(f"{name:<10} {mode:<12} {T:>4} {r['median_ms']:>10.1f} {r['fastest_ms']:>11.1f} {r['cpu_ms']:>8.1f} "
                  f"{r['median_ms'] / T:>9.2f} {growth:>8.2f} {r['kept']:>6} {mem_text:>9}")
            table.append({"pruner": name, "stop": mode, "T": T, **r})
    print("sink score alone: " + ", ".join(f"T={T} {ms:.3f} ms" for T, ms in sink_ms.items()))
    print(f"vs T={first}: ms per frame relative to T={first} (1.00 = linear in T); cpu ms: process CPU time per "
          "call, all threads; peak mem: peak extra memory of one call / size of the (T, n, D) feature tensor.")
    if args.csv:
        import pandas as pd

        pd.DataFrame(table).assign(device=args.device, dtype=str(dtype), n=h * w, D=args.dim, ratio=args.ratio,
                                   load_at_start=load).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
