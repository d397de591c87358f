"""xlm_core.imageio: grey float (H, W) arrays from every format, clear errors, resizing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xlm_core import XLMError
from xlm_core.imageio import read_image, read_image_size, resize_image

H, W = 30, 50  # non-square on purpose: a transposed array would fail


def _gradient_u8() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx * 4 + yy).astype(np.uint8)


@pytest.mark.parametrize("ext,fmt", [("png", "PNG"), ("bmp", "BMP"), ("tif", "TIFF"), ("jpg", "JPEG")])
def test_read_8bit_formats_give_hw_float_in_unit_range(tmp_path, ext, fmt):
    array = _gradient_u8()
    path = tmp_path / f"img.{ext}"
    Image.fromarray(array).save(path, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    image = read_image(path)
    assert image.shape == (H, W) and image.dtype == np.float32
    tolerance = 3 / 255 if fmt == "JPEG" else 1e-6
    np.testing.assert_allclose(image, array / 255.0, atol=tolerance)
    assert read_image_size(path) == (W, H)


def test_rgb_becomes_grey_and_16bit_is_scaled(tmp_path):
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red -> luma 0.299
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert read_image(tmp_path / "rgb.png") == pytest.approx(np.full((H, W), 76 / 255), abs=1e-6)
    deep = np.full((H, W), 65535, dtype=np.uint16)
    deep[0, 0] = 0
    Image.fromarray(deep).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image[0, 0] == 0.0 and image[1, 1] == pytest.approx(1.0)


def test_metaimage_volume_of_one_slice_reads_as_2d(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    array = _gradient_u8()[None]  # (1, H, W): SimpleITK size (W, H, 1), as the DHA .mha
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "v.mha"))
    image = read_image(tmp_path / "v.mha")
    assert image.shape == (H, W)
    np.testing.assert_allclose(image, array[0] / 255.0, atol=1e-6)
    assert read_image_size(tmp_path / "v.mha") == (W, H)


@pytest.mark.parametrize("ext,fmt", [("png", "PNG"), ("bmp", "BMP"), ("jpg", "JPEG")])
def test_truncated_file_raises_naming_it(tmp_path, ext, fmt):
    path = tmp_path / f"cut.{ext}"
    Image.fromarray(_gradient_u8()).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(XLMError, match=rf"cut\.{ext}.*truncated"):
        read_image(path)


def test_empty_missing_and_non_image_files_raise(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(XLMError, match="empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(XLMError, match="text.png"):
        read_image(tmp_path / "text.png")
    with pytest.raises(XLMError, match="text.png"):
        read_image_size(tmp_path / "text.png")
    with pytest.raises(XLMError, match="not found"):
        read_image(tmp_path / "missing.bmp")


def test_resize_is_pixel_centre_aligned_and_keeps_hw():
    xx = np.tile(np.arange(W, dtype=np.float32), (H, 1))  # value = x
    up = resize_image(xx, (2 * H, 2 * W))
    assert up.shape == (2 * H, 2 * W)
    # grid column g samples original x = (g + 0.5) / 2 - 0.5 (pixel-centre convention)
    for g in (5, 20, 61):
        assert up[3, g] == pytest.approx((g + 0.5) / 2 - 0.5, abs=1e-4)
    down = resize_image(np.full((H, W), 0.25, np.float32), (7, 11))
    assert down.shape == (7, 11)
    np.testing.assert_allclose(down, 0.25, atol=1e-6)


def test_real_mha_matches_jpg_size(hand_root):
    mha, jpg = hand_root / "mha" / "7088.mha", hand_root / "jpg" / "7088.jpg"
    image = read_image(mha)
    assert image.ndim == 2
    assert read_image_size(mha) == read_image_size(jpg) == (image.shape[1], image.shape[0])
    assert float(np.abs(image - read_image(jpg)).mean()) < 0.01
