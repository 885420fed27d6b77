"""Atomic file writes, for checkpoints and result files.

A reader (or a resumed run) sees either the previous file or the complete
new one, never a partial write: the data go to a temporary file in the same
directory, which ``os.replace`` then renames over the target (atomic on
POSIX and Windows within one file system).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, write) -> None:
    """Write a file atomically: ``write(file_object)`` into a temporary file in
    the same directory, then ``os.replace`` it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
