"""One vision-encoder pass per video per backbone: the encoder's output on disk, shared by every combination.

Pruning happens after the encoder, so every (pruner, SToP, ratio) combination of a sweep needs the same
`VisionTokens` for a video (post-projector features, importance, keys, frame features, grid and the
adapter's ``extra``). For LLaVA-OV-7B at 32 frames the encoder costs about 21 TFLOPs, twice the pruned
prefill at r = 0.1, so a sweep that re-encoded every video per combination paid it 9 times.

    cache = FeatureCache("/scratch/features", max_gb=50)
    out = backbone.generate(video, prompt, pruner=..., feature_cache=cache)
    out.stats["vision_cache"]            # "hit" (loaded), "miss" (encoded, then stored) or "off"

An entry is keyed by everything that changes the encoder's output: the adapter, the checkpoint and a
fingerprint of its weights (the hub revision, or the weight files' sizes and mtimes), dtype, device type
and attention implementation; the video file (resolved path, size, mtime) and the exact frames decoded
(indices, i.e. frame count and time window); the video processor's settings and the processed input's
shapes. Entries are written atomically (temporary file + rename), carry a SHA-256 of their payload and
their full key, and are loaded with ``torch.load(weights_only=True)``: a partial, corrupt or mismatched
entry is deleted and recomputed, never trusted. Several processes (ranks, Slurm jobs) may share a folder:
the worst race is two processes encoding the same video and one rename winning. The folder is bounded
(``max_gb``): least recently used entries (file mtime, refreshed on every hit) are evicted.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import weakref
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write_bytes
from .base import VisionTokens

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what an entry holds, or how the adapters compute it, changes
MAGIC = b"SINKFC01"
SUFFIX = ".feat"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
RESCAN_EVERY = 64  # writes between full size scans (other processes write to the same folder)
STALE_TMP_S = 3600.0  # a temporary file this old belongs to a writer that died


class CorruptEntry(ValueError):
    """An entry that must not be used (truncated, altered, or another key's)."""


@dataclass
class CacheCounts:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    evicted: int = 0
    write_errors: int = 0


def _cpu(value: Any) -> Any:
    """A copy on CPU holding only its own elements (a view would drag its whole storage into the file)."""
    if isinstance(value, torch.Tensor):
        out = value.detach().cpu().contiguous()
        if out.untyped_storage().nbytes() != out.numel() * out.element_size():
            out = out.clone()
        return out
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    return value


def _storable(value: Any) -> bool:
    """What ``torch.load(weights_only=True)`` reads back: tensors, numbers, text and containers of them."""
    if isinstance(value, (torch.Tensor, int, float, str, bool, type(None))):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _storable(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_storable(v) for v in value)
    return False


def weights_fingerprint(backbone) -> dict[str, Any]:
    """What identifies the loaded weights: the hub revision when loaded from the hub cache, and the weight
    files' (name, size, mtime) when the checkpoint is a directory (a rebuilt or re-downloaded one differs)."""
    commit = getattr(backbone.model.config, "_commit_hash", None)
    source = Path(backbone.checkpoint) if backbone.checkpoint else None
    files = []
    if source is not None and source.is_dir():
        for path in sorted(source.iterdir()):
            if path.suffix in WEIGHT_SUFFIXES or path.name == "config.json":
                stat = path.stat()
                files.append([path.name, stat.st_size, stat.st_mtime_ns])
    return {"revision": commit, "files": files}


class FeatureCache:
    """A folder of encoder outputs (see the module docstring). ``max_gb`` bounds its size on disk."""

    def __init__(self, directory: str | Path, max_gb: float = 50.0) -> None:
        if not max_gb > 0:
            raise ValueError(f"feature cache size max_gb={max_gb!r} is invalid; allowed: a number of GB > 0")
        self.directory = Path(directory).expanduser()
        self.max_bytes = int(max_gb * 1024**3)
        self.counts = CacheCounts()
        self._backbones: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # backbone -> its identity
        self._estimate: int | None = None  # bytes on disk as last scanned, plus what this process wrote since
        self._writes = 0
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.directory)!r}, max_gb={self.max_bytes / 1024**3:g})"

    # -- keys ---------------------------------------------------------------------------------------------
    def _identity(self, backbone) -> dict[str, Any]:
        if backbone not in self._backbones:
            model = backbone.model
            self._backbones[backbone] = {
                "adapter": f"{type(backbone).__module__}.{type(backbone).__qualname__}",
                "checkpoint": backbone.checkpoint, "weights": weights_fingerprint(backbone),
                "dtype": str(backbone.dtype), "device": backbone.device.type,
                "attn_implementation": getattr(model.config, "_attn_implementation", None)}
        return self._backbones[backbone]

    def key(self, backbone, prepared) -> dict[str, Any]:
        """Everything the encoder's output depends on, for this backbone and this prepared request."""
        video = prepared.video
        path = Path(video.path).resolve()
        stat = path.stat()
        processor = getattr(backbone.processor, "video_processor", None)
        settings = processor.to_dict() if processor is not None and hasattr(processor, "to_dict") else {}
        shapes = {name: list(value.shape) for name, value in prepared.inputs.items()
                  if isinstance(value, torch.Tensor) and name not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        return {"format": FORMAT, "backbone": self._identity(backbone),
                "video": {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
                "frames": list(video.indices), "window": list(video.window),
                "processor": json.loads(json.dumps({**settings, **backbone.video_kwargs}, sort_keys=True, default=str)),
                "inputs": shapes}

    def path_for(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}{SUFFIX}"

    # -- the one call the backbone makes -----------------------------------------------------------------
    def fetch(self, backbone, prepared) -> tuple[VisionTokens, str]:
        """(VisionTokens, "hit" | "miss"): the stored encoder output, or a fresh ``backbone.encode`` stored now."""
        key = self.key(backbone, prepared)
        path = self.path_for(key)
        vision = self._load(path, key, backbone)
        if vision is not None:
            self.counts.hits += 1
            return vision, "hit"
        self.counts.misses += 1
        vision = backbone.encode(prepared)
        self._store(path, key, vision)
        return vision, "miss"

    # -- reading -----------------------------------------------------------------------------------------
    def _load(self, path: Path, key: dict[str, Any], backbone) -> VisionTokens | None:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as err:
            self._warn("read", f"feature cache: cannot read {path} ({err}); encoding instead")
            return None
        try:
            payload = self._decode(data, key)
            vision = VisionTokens(**_to(payload, backbone.device))
            _check(vision, backbone)
        except Exception as err:  # noqa: BLE001 - anything wrong with an entry means: recompute it
            self.counts.corrupt += 1
            log.warning("feature cache: discarding unusable entry %s (%s); encoding again", path.name, err)
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # least recently *used* goes first
        except OSError:
            pass
        return vision

    @staticmethod
    def _decode(data: bytes, key: dict[str, Any]) -> dict[str, Any]:
        if len(data) < len(MAGIC) + 32 or not data.startswith(MAGIC):
            raise CorruptEntry("not a feature cache entry (truncated or foreign file)")
        digest, body = data[len(MAGIC):len(MAGIC) + 32], data[len(MAGIC) + 32:]
        if hashlib.sha256(body).digest() != digest:
            raise CorruptEntry("checksum mismatch")
        stored = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
        if stored.get("key") != json.dumps(key, sort_keys=True):
            raise CorruptEntry("entry belongs to another key")
        names = {f.name for f in fields(VisionTokens)}
        if set(stored.get("vision", {})) != names:
            raise CorruptEntry(f"entry holds {sorted(stored.get('vision', {}))}, expected {sorted(names)}")
        return stored["vision"]

    # -- writing -----------------------------------------------------------------------------------------
    def _store(self, path: Path, key: dict[str, Any], vision: VisionTokens) -> None:
        payload = {f.name: getattr(vision, f.name) for f in fields(vision)}
        if not _storable(payload):
            self._warn("storable", f"feature cache: {type(vision).__name__} of this backbone holds values other than "
                                   "tensors, numbers and text; not cached")
            return
        buffer = io.BytesIO()
        torch.save({"key": json.dumps(key, sort_keys=True), "vision": _cpu(payload)}, buffer)
        body = buffer.getvalue()
        try:
            atomic_write_bytes(path, MAGIC + hashlib.sha256(body).digest() + body)
        except OSError as err:  # a full or read-only disk costs the speed-up, never the run
            self.counts.write_errors += 1
            self._warn("write", f"feature cache: cannot write to {self.directory} ({err}); continuing without storing")
            return
        self._writes += 1
        if self._estimate is not None:
            self._estimate += len(body) + len(MAGIC) + 32
        if self._estimate is None or self._estimate > self.max_bytes or self._writes % RESCAN_EVERY == 0:
            self.evict()

    def entries(self) -> list[tuple[Path, int, float]]:
        """(path, bytes, mtime) of every entry; stale temporary files of dead writers are removed on the way."""
        found = []
        now = time.time()
        for sub in self.directory.glob("??"):
            for path in sub.iterdir():
                try:
                    stat = path.stat()
                except FileNotFoundError:  # evicted by another process meanwhile
                    continue
                if path.suffix == SUFFIX:
                    found.append((path, stat.st_size, stat.st_mtime))
                elif path.name.endswith(".tmp") and now - stat.st_mtime > STALE_TMP_S:
                    path.unlink(missing_ok=True)
        return found

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self) -> int:
        """Delete least recently used entries until the folder is within 90 % of its bound; returns how many."""
        entries = sorted(self.entries(), key=lambda e: e[2])
        total = sum(size for _, size, _ in entries)
        removed = 0
        if total > self.max_bytes:
            target = int(0.9 * self.max_bytes)
            for path, size, _ in entries:
                if total <= target:
                    break
                path.unlink(missing_ok=True)  # another process may have taken it already
                total -= size
                removed += 1
            self.counts.evicted += removed
            log.info("feature cache: evicted %d entries, %.2f GB left in %s", removed, total / 1024**3, self.directory)
        self._estimate = total
        return removed

    def _warn(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(message)


def _check(vision: VisionTokens, backbone) -> None:
    """Shapes and dtype consistent with each other and with the loaded model."""
    features = vision.features
    if features.ndim != 3:
        raise CorruptEntry(f"features have shape {tuple(features.shape)}, expected (T, n, D)")
    if tuple(vision.attn.shape) != tuple(features.shape[:2]) or tuple(vision.keys.shape[:2]) != tuple(features.shape[:2]):
        raise CorruptEntry("importance / keys do not match the features' (T, n)")
    if vision.grid[0] * vision.grid[1] != features.shape[1]:
        raise CorruptEntry(f"grid {tuple(vision.grid)} does not cover n={features.shape[1]} tokens")
    if features.dtype != backbone.dtype:
        raise CorruptEntry(f"features are {features.dtype}, the model runs in {backbone.dtype}")
