"""Atomic file writes, for checkpoints and result files, an up-front check that outputs can be written,
and content hashes.

A reader (or a resumed run) sees either the previous file or the complete
new one, never a partial write: the data go to a temporary file in the same
directory, which is flushed to the disk and then renamed over the target by
``os.replace`` (atomic on POSIX and Windows within one file system).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, write) -> None:
    """Write a file atomically: ``write(file_object)`` into a temporary file in
    the same directory, ``fsync`` it, then ``os.replace`` it over ``path``.

    The ``fsync`` comes before the rename so that a crash of the machine cannot
    leave ``path`` renamed but empty; the directory is synced afterwards (best
    effort: not every platform can open a directory) so that the rename itself lasts.
    The temporary file is removed on any failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """``fsync`` a directory, where the platform allows it (not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path: str | os.PathLike) -> None:
    """Raise ``OSError`` (``cannot write PATH: reason``) unless :func:`atomic_write` can write ``path``.

    For the commands to call before any work, so that hours of training or
    evaluation do not end in a failed save. Missing parent directories are
    created (as :func:`atomic_write` would); the directory is probed with a
    real temporary file, which also catches read-only file systems and ACLs.
    """
    path = Path(path)
    if path.is_dir():
        raise OSError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except (FileExistsError, NotADirectoryError):  # mkdir met a file where a directory should be
        raise OSError(f"cannot write {path}: a part of {path.parent} is not a directory") from None
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content, as hexadecimal (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
