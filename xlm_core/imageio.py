"""Reading x-ray images as grey float arrays, and resizing them.

Every reader returns an ``(H, W)`` float32 array in ``[0, 1]``; sizes are reported as
``(W, H)`` like PIL. Bad files (missing, empty, truncated, not an image, not 2-D) raise
:class:`xlm_core.XLMError` naming the file, never a library traceback.

Intensity scaling: 8-bit data / 255; 16-bit unsigned data / 65535; anything else (signed
integers, 32-bit integers, floats, as DICOM or MetaImage often hold) is min-max scaled per
image. Colour images are converted to grey (ITU-R 601 luma, as PIL ``convert("L")``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from xlm_core import XLMError

#: Extensions read through SimpleITK (medical formats); everything else goes through PIL.
SITK_EXTENSIONS = (".mha", ".mhd", ".dcm", ".nii", ".nii.gz", ".nrrd")
#: Extensions recognised as images when a dataset folder is scanned.
IMAGE_EXTENSIONS = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff") + SITK_EXTENSIONS

# A truncated file must fail, not decode into a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has an image extension this module reads (case-insensitive).

    Args:
        path: a file name or path (not opened).

    Returns:
        True for an extension of :data:`IMAGE_EXTENSIONS`.
    """
    name = str(path).lower()
    return name.endswith(IMAGE_EXTENSIONS)


def _uses_sitk(path: Path) -> bool:
    return str(path).lower().endswith(SITK_EXTENSIONS)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise XLMError(f"{path}: image file not found")
    if path.stat().st_size == 0:
        raise XLMError(f"{path}: image file is empty (0 bytes)")


def _scale_to_unit(array: np.ndarray, path: Path) -> np.ndarray:
    """Map raw pixel values to float32 ``[0, 1]`` (see the module docstring)."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0)
    if array.dtype == bool:
        return array.astype(np.float32)
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise XLMError(f"{path}: image holds NaN or infinite pixel values")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def _read_pil(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()  # decodes the whole image: truncated data raises here
            mode = img.mode
            if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
                array = np.asarray(img, dtype=np.uint16)
            elif mode in ("I", "F"):
                array = np.asarray(img)
                if mode == "I" and array.size and array.min() >= 0 and array.max() <= 65535:
                    array = array.astype(np.uint16)  # 16-bit PNGs open as mode "I"
            elif mode == "L":
                array = np.asarray(img, dtype=np.uint8)
            else:  # 1, P, RGB, RGBA, LA, CMYK, YCbCr ...
                array = np.asarray(img.convert("L"), dtype=np.uint8)
    except XLMError:
        raise
    except Image.DecompressionBombError as exc:
        raise XLMError(f"{path}: image too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise XLMError(f"{path}: cannot decode image ({_reason(exc)})") from None
    return array


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return f"truncated file: {text}"
    return text


def _read_sitk(path: Path) -> np.ndarray:
    import SimpleITK as sitk  # imported lazily: only medical formats need it

    try:
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image)  # (Z, H, W) or (H, W), maybe (..., C)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[-1] if first else "unreadable"
        raise XLMError(f"{path}: cannot decode image ({detail})") from None
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = array.astype(np.float64).mean(axis=-1)
    array = np.squeeze(array)
    if array.ndim != 2:
        raise XLMError(f"{path}: expected a 2-D image, got an array of shape {array.shape}")
    return array


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to grey values in [0, 1].

    Formats: bmp/png/jpg/jpeg/tif through PIL (the whole image is decoded, so a truncated
    file is detected); mha/mhd/dcm/nii/nrrd through SimpleITK (a ``(W, H, 1)`` volume
    becomes 2-D). Pixel values are scaled as the module docstring says.

    Args:
        path: the image file.

    Returns:
        ``(H, W)`` float32 array in [0, 1].

    Raises:
        XLMError: naming the file when it is missing, empty, unreadable, truncated or not 2-D.
    """
    path = Path(path)
    _check_file(path)
    array = _read_sitk(path) if _uses_sitk(path) else _read_pil(path)
    if array.ndim != 2 or min(array.shape) < 1:
        raise XLMError(f"{path}: expected a 2-D image, got an array of shape {array.shape}")
    return np.ascontiguousarray(_scale_to_unit(array, path))


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """The size of an image, from its header only where the format allows.

    Does not detect truncated pixel data (use :func:`read_image` for that).

    Args:
        path: the image file.

    Returns:
        ``(W, H)`` in pixels (note: width first, as PIL and SimpleITK give it).

    Raises:
        XLMError: naming the file when it is missing, empty, has an unreadable header, is too
            large to decode safely, or is not 2-D.
    """
    path = Path(path)
    _check_file(path)
    if _uses_sitk(path):
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            lines = str(exc).strip().splitlines()
            raise XLMError(f"{path}: cannot read image header ({lines[-1] if lines else exc})") from None
        size = reader.GetSize()
        if len(size) > 2 and any(s != 1 for s in size[2:]):
            raise XLMError(f"{path}: expected a 2-D image, got size {tuple(size)}")
        return int(size[0]), int(size[1])
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError as exc:
        raise XLMError(f"{path}: image too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise XLMError(f"{path}: cannot read image header ({_reason(exc)})") from None
    return int(width), int(height)


def resize_image(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a grey float image.

    Bilinear interpolation with PIL, pixel-centre aligned (as ``cv2.resize``: original
    pixel centre ``x`` maps to ``(x + 0.5) * W' / W - 0.5``); when shrinking, the filter
    widens with the scale factor, so it averages like an area filter (no aliasing).

    Args:
        image: ``(H, W)`` float image.
        size_hw: ``(H', W')`` target size.

    Returns:
        ``(H', W')`` float32 array (a copy when the size is unchanged).

    Raises:
        XLMError: for a non-positive target size or an image that is not 2-D.
    """
    height, width = int(size_hw[0]), int(size_hw[1])
    if height < 1 or width < 1:
        raise XLMError(f"resize target must be positive (H, W), got {size_hw}")
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 2:
        raise XLMError(f"resize expects a 2-D (H, W) image, got shape {array.shape}")
    if array.shape == (height, width):
        return array.copy()
    resized = Image.fromarray(array).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)
