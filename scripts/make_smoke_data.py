#!/usr/bin/env python
"""Build the synthetic smoke benchmark (all task layouts, tiny videos) into OUT_DIR.

    python scripts/make_smoke_data.py /tmp/smoke --seed 3   # then: SINKTOP_SMOKE_DIR=/tmp/smoke

The smoke task set (and SINKTOP_DATA_ROOT=builtin:smoke) builds it on demand at $SINKTOP_SMOKE_DIR,
default ~/.cache/sinktop_eval/smoke; this script builds one ahead of time, e.g. on a shared filesystem.

Deterministic from --seed. An existing complete build of the same seed is kept unless --force.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sinktop_eval.benchmarks.smoke_data import DEFAULT_SEED, build_smoke_data, ensure_smoke_data, read_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="folder to create (e.g. data/smoke)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete build is there")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if args.force:
            build_smoke_data(args.out_dir, seed=args.seed)
        else:
            ensure_smoke_data(args.out_dir, seed=args.seed)
    except (OSError, ValueError) as err:
        print(f"make_smoke_data: {err}", file=sys.stderr)
        return 1
    manifest = read_manifest(args.out_dir) or {}
    size = sum(p.stat().st_size for p in args.out_dir.rglob("*") if p.is_file())
    print(f"smoke benchmark (seed {manifest.get('seed')}) at {args.out_dir.resolve()}: "
          f"{len(manifest.get('files', []))} files, {size / 1024:.0f} KiB, {time.perf_counter() - started:.2f}s; "
          f"counts {manifest.get('counts')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
