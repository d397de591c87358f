"""The torch side of the data: a Dataset of (image, Gaussian heatmaps) and reproducible loaders.

:class:`HeatmapDataset` reads each image through :class:`~xlm_core.datasets.cache.PreprocessCache`
(decoded and resized once per size, then memory-cheap ``.npy`` reads), maps the landmarks from
original pixels onto the grid with :func:`xlm_core.geometry.to_grid`, optionally augments the
pair (:mod:`xlm_core.augment`, parameters drawn per read from ``(seed, epoch, index)``) and
encodes one Gaussian per landmark (:func:`xlm_core.heatmaps.gaussian_heatmaps`).

Reproducibility: augmentation depends only on ``(seed, epoch, index)`` and the shuffling of
each epoch only on ``(seed, epoch)`` (:func:`make_loader`), never on worker count, worker
scheduling or a resume in the middle of a run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from xlm_core.augment import LandmarkAugmenter, sample_seed
from xlm_core.datasets.base import Sample
from xlm_core.geometry import to_grid
from xlm_core.heatmaps import gaussian_heatmaps
from xlm_core.imageio import read_image_size

#: the seed stream index reserved for shuffling (sample indices use 0, 1, 2, ...)
_SHUFFLE_STREAM = 0xFFFFFFFF


class HeatmapDataset(Dataset):
    """Samples as network-ready tensors at ``size_hw`` = (H, W).

    Item ``i`` is a dict:

    - ``image``: ``(1, H, W)`` float32 in [0, 1] (grey; see ``models.to_model_input``)
    - ``heatmaps``: ``(L, H, W)`` float32 Gaussian targets, sigma in grid pixels
    - ``landmarks_grid``: ``(L, 2)`` float32 (x, y) in grid pixels (after augmentation)
    - ``landmarks_px``: ``(L, 2)`` float64 (x, y) ground truth in original pixels (never augmented)
    - ``image_hw``: ``(2,)`` int64 original (H, W)
    - ``id``: the sample id; ``index``: ``i``

    Args:
        samples: the samples (image path and landmarks in original pixels).
        size_hw: ``(H, W)`` of the grid images are resized to.
        sigma: Gaussian sigma of the targets, in grid pixels.
        cache: a :class:`xlm_core.datasets.cache.PreprocessCache` that loads resized images.
        augmenter: applied to each read (drawn from ``seed``, the epoch and the index); None:
            no augmentation.
        seed: the run's seed.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size_hw: tuple[int, int],
        sigma: float,
        cache,
        augmenter: LandmarkAugmenter | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))
        self.sigma = float(sigma)
        self.cache = cache
        self.augmenter = augmenter
        self.seed = int(seed)
        self.epoch = 0
        self._image_hw: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch`` (call before iterating a new epoch).

        Args:
            epoch: the epoch number.
        """
        self.epoch = int(epoch)

    def image_hw(self, index: int) -> tuple[int, int]:
        """Original size of sample ``index`` (header read, remembered).

        Args:
            index: the sample's index.

        Returns:
            ``(H, W)`` in pixels.
        """
        if index not in self._image_hw:
            w, h = read_image_size(Path(self.samples[index].image))
            self._image_hw[index] = (h, w)
        return self._image_hw[index]

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image_hw = self.image_hw(index)
        image = np.asarray(self.cache.load(Path(sample.image), self.size_hw), dtype=np.float32)
        if image.shape != self.size_hw:
            raise RuntimeError(f"{sample.image}: cache returned {image.shape}, expected {self.size_hw}")
        gt_px = np.asarray(sample.landmarks, dtype=np.float64)
        grid_xy = np.asarray(to_grid(gt_px, image_hw, self.size_hw), dtype=np.float64)
        if self.augmenter is not None:
            image, grid_xy = self.augmenter(image, grid_xy, sample_seed(self.seed, self.epoch, index))
        heatmaps = gaussian_heatmaps(grid_xy, self.size_hw, self.sigma)
        return {
            "image": torch.tensor(image, dtype=torch.float32)[None],  # a copy: cache arrays may be read-only
            "heatmaps": torch.from_numpy(heatmaps),
            "landmarks_grid": torch.from_numpy(grid_xy.astype(np.float32)),
            "landmarks_px": torch.from_numpy(gt_px),
            "image_hw": torch.tensor(image_hw, dtype=torch.int64),
            "id": sample.id,
            "index": index,
        }


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed numpy and python in each worker from torch's per-worker seed.

    Args:
        worker_id: the DataLoader worker's id (unused; torch's seed already differs per worker).
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that shuffles epoch ``epoch``: a function of ``(seed, epoch)`` only.

    Args:
        seed: the run's seed.
        epoch: the epoch.

    Returns:
        A seeded ``torch.Generator``.
    """
    generator = torch.Generator()
    generator.manual_seed(sample_seed(seed, epoch, _SHUFFLE_STREAM))
    return generator


def make_loader(
    dataset: HeatmapDataset,
    batch_size: int,
    shuffle: bool,
    epoch: int = 0,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader for one epoch.

    Training (``shuffle=True``): order from :func:`epoch_generator`, ``drop_last`` when the set
    holds at least one full batch (so no batch of one reaches a BatchNorm after global pooling,
    trap 7). Evaluation: fixed order, every sample.

    Args:
        dataset: the dataset; its epoch is set to ``epoch``.
        batch_size: samples per batch.
        shuffle: shuffle (training) or keep the order (evaluation).
        epoch: the epoch (selects the shuffle and the augmentation draw).
        seed: the run's seed.
        num_workers: worker processes (0: load in the main process).
        drop_last: drop a last incomplete batch; None: as described above.
        pin_memory: pin batches for faster copies to a GPU.

    Returns:
        The ``torch.utils.data.DataLoader``.
    """
    dataset.set_epoch(epoch)
    if drop_last is None:
        drop_last = shuffle and len(dataset) >= batch_size
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=epoch_generator(seed, epoch) if shuffle else None,
        num_workers=num_workers,
        worker_init_fn=seed_worker if num_workers else None,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
