"""User-facing errors of the backbone layer: one line that names the thing and the fix.

They subclass the builtin the caller would expect (``ValueError`` / ``FileNotFoundError``), so plain
``except ValueError`` still works, and ``BackboneError`` catches all of them.
"""
from __future__ import annotations


class BackboneError(Exception):
    """Base of every error this package raises on purpose."""


class UnknownBackboneError(BackboneError, ValueError):
    """A backbone name that is neither registered nor a checkpoint directory."""


class UnsupportedCheckpointError(BackboneError, ValueError):
    """A checkpoint directory whose config.json names an architecture we have no adapter for."""


class CheckpointUnavailableError(BackboneError, OSError):
    """A hub id that is neither in the local cache nor downloadable from here."""


class VideoNotFoundError(BackboneError, FileNotFoundError):
    """The video path does not exist."""


class VideoDecodeError(BackboneError, ValueError):
    """The video exists but cannot be decoded (corrupt, empty, or the time window selects nothing)."""
