"""The preprocessing cache: each image decoded and resized once per target size.

Entries are keyed by the image file's *content* hash (not its path or time stamp), the
target size and the resize method, stored as ``.npy`` files written atomically, so two
processes filling the same cache never see half a file. A decode error raises
:class:`XLMError` and writes nothing.

Layout: ``CACHE_DIR/images/<hash[:2]>/<hash>_<H>x<W>_<method>.npy``. Default
``CACHE_DIR``: ``$XLM_CACHE``, else ``~/.cache/xlm``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from xlm_core import XLMError
from xlm_core.imageio import read_image, resize_image
from xlm_core.io import atomic_path, sha256_file

#: Changes whenever read_image/resize_image would give different arrays: old entries are then ignored.
RESIZE_METHOD = "pilbilinear1"


def default_cache_dir() -> Path:
    """The cache folder: ``$XLM_CACHE``, else ``~/.cache/xlm``.

    Returns:
        The folder's ``Path`` (not created here).
    """
    return Path(os.environ.get("XLM_CACHE") or Path.home() / ".cache" / "xlm")


class PreprocessCache:
    """Decoded, resized images on disk, keyed by file content, size and resize method.

    Args:
        cache_dir: the cache folder; None: :func:`default_cache_dir`.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._hashes: dict[tuple[str, int, int], str] = {}

    def content_hash(self, path: str | os.PathLike) -> str:
        """SHA-256 of the file's bytes (remembered per path, size and modification time).

        Args:
            path: the file.

        Returns:
            64 hexadecimal characters.

        Raises:
            XLMError: when the file is missing or unreadable.
        """
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as exc:
            raise XLMError(f"{path}: image file not found ({exc.strerror or exc})") from None
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        known = self._hashes.get(key)
        if known is not None:
            return known
        try:
            value = sha256_file(path)
        except OSError as exc:
            raise XLMError(f"{path}: cannot read image file ({exc.strerror or exc})") from None
        self._hashes[key] = value
        return value

    def entry_path(self, path: str | os.PathLike, size_hw: tuple[int, int]) -> Path:
        """Where the resized array of ``path`` is (or would be) stored.

        Args:
            path: the image file.
            size_hw: ``(H, W)`` of the resized array.

        Returns:
            The ``.npy`` path under the cache folder.
        """
        height, width = (int(v) for v in size_hw)
        digest = self.content_hash(path)
        return self.cache_dir / "images" / digest[:2] / f"{digest}_{height}x{width}_{RESIZE_METHOD}.npy"

    def load(self, path: str | os.PathLike, size_hw: tuple[int, int]) -> np.ndarray:
        """``read_image(path)`` resized to ``size_hw``, from the cache when present.

        Decodes only on a cache miss; a damaged cache entry is rebuilt; a read-only or full cache
        is not an error.

        Args:
            path: the image file.
            size_hw: ``(H, W)`` of the result.

        Returns:
            ``(H, W)`` float32 array in [0, 1].

        Raises:
            XLMError: when the image cannot be read (:func:`xlm_core.imageio.read_image`).
        """
        height, width = (int(v) for v in size_hw)
        entry = self.entry_path(path, (height, width))
        if entry.is_file():
            try:
                array = np.load(entry, allow_pickle=False)
                if array.shape == (height, width) and array.dtype == np.float32:
                    return array
            except (OSError, ValueError, EOFError):  # EOFError: a zero-byte entry
                pass  # damaged entry: decode again and overwrite it
        array = resize_image(read_image(path), (height, width))  # raises before any write
        try:
            with atomic_path(entry) as tmp, open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
        except OSError:
            pass  # a read-only or full cache must not stop training; the array is still right
        return array

    def fingerprint(self, paths: Iterable[str | os.PathLike]) -> str:
        """Content hash of a list of files (in the given order, with their base names).

        Args:
            paths: the files.

        Returns:
            16 hexadecimal characters.
        """
        digest = hashlib.sha256()
        for path in paths:
            digest.update(Path(path).name.encode() + b"\0")
            digest.update(self.content_hash(path).encode() + b"\n")
        return digest.hexdigest()[:16]
