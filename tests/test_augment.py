"""Augmentation: drawn per read (trap 5), keypoints follow the image, reproducible from the seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xlm_core.augment import LandmarkAugmenter, default_augmenter, sample_seed
from xlm_core.datasets.base import Sample
from xlm_core.datasets.cache import PreprocessCache
from xlm_core.geometry import to_grid
from xlm_core.heatmaps import decode_subpixel
from xlm_core.torchdata import HeatmapDataset, epoch_generator, make_loader

# Non-square original (H=100, W=80) onto a non-square grid (H=64, W=48): a transposed grid
# (trap 6) would put every peak off its dot.
IMAGE_HW = (100, 80)
GRID_HW = (64, 48)
LANDMARKS = np.array([[20.0, 25.0], [60.0, 30.0], [40.0, 55.0], [25.0, 80.0], [58.0, 75.0]])


def _dot_image(path: Path, landmarks: np.ndarray, hw=IMAGE_HW, sigma_px: float = 2.5) -> None:
    """A dark image with one bright Gaussian dot per landmark, saved as 8-bit PNG."""
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float64)
    img = np.zeros(hw)
    for x, y in landmarks:
        img = np.maximum(img, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_px**2)))
    Image.fromarray((img * 255 + 0.5).astype(np.uint8), mode="L").save(path)


@pytest.fixture
def dot_sample(tmp_path: Path) -> Sample:
    path = tmp_path / "dots.png"
    _dot_image(path, LANDMARKS)
    return Sample(id="dots", image=path, landmarks=LANDMARKS.copy())


@pytest.fixture
def cache(tmp_path: Path) -> PreprocessCache:
    return PreprocessCache(tmp_path / "cache")


def _dot_centre(image: np.ndarray, near_xy: np.ndarray, radius: int = 3) -> np.ndarray:
    """Intensity-weighted centre (x, y) of the dot around ``near_xy`` in an (H, W) image."""
    x0, y0 = (round(float(v)) for v in near_xy)
    h, w = image.shape
    ys = slice(max(y0 - radius, 0), min(y0 + radius + 1, h))
    xs = slice(max(x0 - radius, 0), min(x0 + radius + 1, w))
    win = image[ys, xs].astype(np.float64)
    win = np.clip(win - win.min(), 0, None)
    gy, gx = np.mgrid[ys, xs]
    return np.array([(win * gx).sum() / win.sum(), (win * gy).sum() / win.sum()])


def test_sample_seed_distinct_and_reproducible():
    seeds = {sample_seed(s, e, i) for s in range(3) for e in range(5) for i in range(7)}
    assert len(seeds) == 3 * 5 * 7
    assert sample_seed(1, 2, 3) == sample_seed(1, 2, 3)


def test_reads_of_one_sample_differ_across_epochs(dot_sample, cache):
    """Trap 5: parameters drawn per read. Each epoch's read of the sample is a new draw."""
    ds = HeatmapDataset([dot_sample], GRID_HW, sigma=1.5, cache=cache, augmenter=default_augmenter(), seed=0)
    reads = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        reads.append(ds[0])
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.equal(reads[a]["image"], reads[b]["image"])
            assert not torch.equal(reads[a]["landmarks_grid"], reads[b]["landmarks_grid"])
    # the same sample twice in one epoch (two indices) is drawn twice too
    twice = HeatmapDataset([dot_sample, dot_sample], GRID_HW, 1.5, cache, default_augmenter(), seed=0)
    assert not torch.equal(twice[0]["landmarks_grid"], twice[1]["landmarks_grid"])


def test_augmentation_reproducible_from_seed(dot_sample, cache):
    def read(seed, epoch):
        ds = HeatmapDataset([dot_sample], GRID_HW, 1.5, cache, default_augmenter(), seed=seed)
        ds.set_epoch(epoch)
        return ds[0]

    a, b, c = read(7, 3), read(7, 3), read(8, 3)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["heatmaps"], b["heatmaps"])
    assert not torch.equal(a["landmarks_grid"], c["landmarks_grid"])


def test_item_layout(dot_sample, cache):
    item = HeatmapDataset([dot_sample], GRID_HW, 1.5, cache)[0]
    assert item["image"].shape == (1, *GRID_HW) and item["image"].dtype == torch.float32
    assert item["heatmaps"].shape == (len(LANDMARKS), *GRID_HW)
    assert item["landmarks_grid"].shape == (len(LANDMARKS), 2)
    assert tuple(item["image_hw"].tolist()) == IMAGE_HW
    assert item["id"] == "dots" and item["index"] == 0
    # without augmentation: landmarks exactly to_grid of the ground truth, peaks on them
    expected = to_grid(LANDMARKS, IMAGE_HW, GRID_HW)
    np.testing.assert_allclose(item["landmarks_grid"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(decode_subpixel(item["heatmaps"].numpy()), expected, atol=1e-3)


def test_heatmap_peaks_follow_the_transformed_image(dot_sample, cache):
    """The decoded heatmap peaks sit on the moved dots, and the dots did move."""
    strong = LandmarkAugmenter(rotate_deg=25, scale=(0.85, 1.15), shift_fraction=0.08, p_affine=1.0,
                               p_intensity=0.0)
    ds = HeatmapDataset([dot_sample], GRID_HW, sigma=1.5, cache=cache, augmenter=strong, seed=3)
    plain = to_grid(LANDMARKS, IMAGE_HW, GRID_HW)
    moved_most = 0.0
    for epoch in range(5):
        ds.set_epoch(epoch)
        item = ds[0]
        image = item["image"][0].numpy()
        peaks = decode_subpixel(item["heatmaps"].numpy())
        for k, peak in enumerate(peaks):
            if item["heatmaps"][k].max() < 0.5:  # pushed out of the image: no target
                continue
            dot = _dot_centre(image, peak)
            assert np.linalg.norm(dot - peak) < 0.6, (epoch, k, dot, peak)
            moved_most = max(moved_most, float(np.linalg.norm(peak - plain[k])))
    assert moved_most > 2.0  # the test is not vacuous: the augmentation moved the dots


def test_landmark_count_kept_when_pushed_outside(cache, tmp_path):
    near_edge = np.array([[1.0, 1.0], [40.0, 50.0]])
    path = tmp_path / "edge.png"
    _dot_image(path, near_edge)
    shift = LandmarkAugmenter(rotate_deg=0, scale=(1.0, 1.0), shift_fraction=0.3, p_affine=1.0, p_intensity=0.0)
    ds = HeatmapDataset([Sample("edge", path, near_edge)], GRID_HW, 1.5, cache, shift, seed=0)
    outside = 0
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item["landmarks_grid"].shape == (2, 2)
        x, y = item["landmarks_grid"][0].tolist()
        if not (-0.5 <= x <= GRID_HW[1] - 0.5 and -0.5 <= y <= GRID_HW[0] - 0.5):
            outside += 1
            assert float(item["heatmaps"][0].max()) == 0.0
    assert outside > 0


def test_identity_augmenter_changes_nothing():
    rng = np.random.default_rng(0)
    image = rng.random((20, 30)).astype(np.float32)
    points = np.array([[3.25, 4.5], [20.0, 10.75]])
    aug = LandmarkAugmenter(p_affine=0.0, p_intensity=0.0)
    out, moved = aug(image, points, seed=1)
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(moved, points)


def test_loader_shuffle_depends_on_seed_and_epoch_only(dot_sample, cache):
    samples = [Sample(f"s{i}", dot_sample.image, LANDMARKS) for i in range(6)]
    ds = HeatmapDataset(samples, GRID_HW, 1.5, cache)

    def order(seed, epoch):
        return [i for b in make_loader(ds, 2, True, epoch, seed) for i in b["index"].tolist()]

    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2) or order(0, 1) != order(0, 3)
    assert torch.equal(epoch_generator(5, 2).get_state(), epoch_generator(5, 2).get_state())


def test_train_loader_drops_last_partial_batch(dot_sample, cache):
    """Trap 7: no training batch of one (DeepLabV3's BatchNorm after global pooling)."""
    ds = HeatmapDataset([dot_sample] * 5, GRID_HW, 1.5, cache)
    sizes = [len(b["id"]) for b in make_loader(ds, 2, shuffle=True)]
    assert sizes == [2, 2]
    assert [len(b["id"]) for b in make_loader(ds, 2, shuffle=False)] == [2, 2, 1]
