"""Atomic file writes (a file appears whole or not at all: write to a temporary, then rename),
file locks and file hashes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's content, read in 4 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, not thread-safe


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On any exception the temporary is removed and ``path`` is left as it was. The parent
    folder is created; the file gets the usual mode (0666 less the umask).

    Args:
        path: the file to write.

    Yields:
        The temporary ``Path`` to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[IO], Any], mode: str = "w") -> None:
    """Call ``write(fh)`` on a temporary file opened with ``mode``, then rename it onto ``path``.

    Args:
        path: the file to write.
        write: called with the open file handle.
        mode: the ``open`` mode (``"w"`` or ``"wb"``).
    """
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        write(fh)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically.

    Args:
        path: the file to write.
        text: its whole content.
    """
    atomic_write(path, lambda fh: fh.write(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON with sorted keys (and a final newline) atomically.

    Args:
        path: the file to write.
        obj: a JSON-serialisable object.
    """
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextmanager
def exclusive_lock(path: str | os.PathLike, timeout_s: float | None = None, what: str = "file"):
    """Hold an exclusive ``flock`` on ``path`` for a ``with`` block.

    The lock dies with its process (a SIGKILL frees it).

    Args:
        path: a directory (locked as it is, leaving no lock file behind) or a file (created if
            needed).
        timeout_s: seconds to wait; None waits as long as it takes.
        what: what the lock guards, for the error message.

    Yields:
        The lock's open file descriptor (a holder may write who it is into a lock file).

    Raises:
        XLMError: naming the lock when it is still held after ``timeout_s`` seconds (at once
            for ``timeout_s=0``).
    """
    import fcntl
    import time

    from xlm_core import XLMError

    path = Path(path)
    if path.is_dir():
        fd = os.open(path, os.O_RDONLY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if deadline is not None else 0))
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise XLMError(f"{path}: {what} is locked by another process") from None
                time.sleep(0.2)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def lock_is_held(path: str | os.PathLike) -> bool:
    """True while a process holds :func:`exclusive_lock` on the file ``path`` (never waits).

    Args:
        path: the lock file; a missing one is not held.
    """
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's shared lock
    return False
