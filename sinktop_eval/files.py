"""Files a crash cannot leave half written, and the one cache root. Standard library only, so every layer
(the lmms-eval model's resume file, the runner's results, the twins and the synthetic benchmark) can use it.

    atomic_write_text(path, text)          a whole file: temporary file, fsync, rename over
    atomic_write_bytes(path, data)         the same for bytes
    build_directory(target, build)         a whole folder: built in a sibling temporary folder, renamed into place
    cache_root()                           $SINKTOP_CACHE, else ~/.cache/sinktop_eval
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

CACHE_ENV = "SINKTOP_CACHE"
FILE_MODE = 0o644  # results live on shared filesystems: readable by the group and others, like any new file
DIR_MODE = 0o755


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where built twins, the synthetic benchmark and judge replies are kept between runs."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(CACHE_ENV) or "~/.cache/sinktop_eval").expanduser()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_directory(target: Path, build: Callable[[Path], None], complete: Callable[[Path], bool],
                    replace: bool = False) -> Path:
    """Build a folder in a sibling temporary folder and rename it into place.

    Readers never see half a folder and concurrent builders never mix files: ``complete(path)`` says
    whether a folder is a finished build. When another process finished ``target`` first, its build is
    kept (unless ``replace``, which swaps the old folder out and deletes it).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        build(staging)
        staging.chmod(DIR_MODE)  # mkdtemp makes it private; a shared cache should stay readable
        if target.exists():
            if complete(target) and not replace:
                return target  # another builder won
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:  # a concurrent builder renamed its folder into place between our check and rename
            if not complete(target):
                raise
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def first_line(err: BaseException) -> str:
    """The first non-empty line of an error's message (its type name when it has none)."""
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


# errors that mean "this location cannot hold results" rather than a bug: reported as one line
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST}


def storage_problem(err: BaseException) -> str | None:
    """One line for an OSError that says the output location is unusable (full, read-only, a file), else None."""
    if not isinstance(err, OSError) or err.errno not in STORAGE_ERRNOS:
        return None
    where = f" {err.filename}" if err.filename else ""
    return f"cannot write{where}: {err.strerror or err}"


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write a probe file in it; an OSError names the folder and the reason."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(folder)) from None
