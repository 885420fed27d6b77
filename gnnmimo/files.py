"""Atomic file writes, for checkpoints and result files, an up-front check that outputs can be written,
and content hashes.

A reader (or a resumed run) sees either the previous file or the complete
new one, never a partial write: the data go to a temporary file in the same
directory, which is flushed to the disk and then renamed over the target by
``os.replace`` (atomic on POSIX and Windows within one file system). The
temporary file is named after its writer (host and process id), so that the
next write to the same target removes what a killed writer left behind,
never the live file of a concurrent one.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import socket
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, write) -> None:
    """Write a file atomically: ``write(file_object)`` into a temporary file in
    the same directory, ``fsync`` it, then ``os.replace`` it over ``path``.

    The ``fsync`` comes before the rename so that a crash of the machine cannot
    leave ``path`` renamed but empty; the directory is synced afterwards (best
    effort: not every platform can open a directory) so that the rename itself lasts.
    The temporary file is removed on any failure; one left by a killed writer is
    removed by the next write to ``path`` (:func:`remove_stale_temporaries`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
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


def _temporary_prefix(path: Path) -> str:
    """``.NAME.HOST.PID.``: the temporary files of ``path`` name their writer, so that the
    leftovers of a killed one can be told from the live file of a concurrent one. The host
    keeps a writer on another machine of a shared file system from being judged by this
    machine's process table (its dots replaced, so that a name parses one way only)."""
    return f".{path.name}.{_host()}.{os.getpid()}."


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname())


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``path`` left by writers on this machine that are no longer
    running (a process killed during :func:`atomic_write`); returns them.

    A temporary file whose writer is alive (a concurrent write), runs on another host, or
    cannot be told (another naming, a platform without a process check) is kept.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{re.escape(_host())}\.(\d{{1,9}})\.[^.]+\.tmp")
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        found = pattern.fullmatch(candidate.name)
        if found and not _running(int(found.group(1))):
            try:
                candidate.unlink()
            except OSError:  # gone meanwhile, or not ours to remove: the write goes on
                continue
            removed.append(candidate)
    return removed


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (``True`` where that cannot be checked:
    only POSIX's ``kill(pid, 0)`` asks without side effects)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


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
