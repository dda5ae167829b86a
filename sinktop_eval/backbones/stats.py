"""Per-generation cost accounting: wall-clock phases and peak memory.

Timings synchronise the accelerator before reading the clock, so asynchronous CUDA work is charged to
the phase that launched it. Peak memory is CUDA's max allocated bytes on a GPU; on CPU it is the
process's resident-set peak (VmHWM), reset at the start of each generation where Linux allows it
(``/proc/self/clear_refs``), otherwise the lifetime peak. ``peak_mem_kind`` says which one a number is.
"""
from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulates named phases: ``with watch("vision_s"): ...``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.phases: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds


class PeakMemory:
    """Peak memory over one generation; ``start()`` before, ``read()`` after -> (GB, kind)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "process_rss_peak"

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as handle:  # "5" resets VmHWM to the current RSS
                handle.write("5")
            self.kind = "process_rss_peak"
        except OSError:
            self.kind = "process_rss_peak_lifetime"

    def read(self) -> tuple[float, str]:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 1e9, self.kind
        try:
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024 / 1e9, self.kind
        except OSError:
            pass
        # ru_maxrss is in kilobytes on Linux (bytes on macOS); it is the lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, "process_rss_peak_lifetime"
