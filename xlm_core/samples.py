"""The images of one run: the dataset of a :class:`~xlm_core.config.RunConfig`, split.

The k-fold split and the early-stopping carve use split seed :data:`SPLIT_SEED` whatever the
run seed, so runs that differ only in architecture, transfer or seed are scored on the same
images (paired comparisons). Floor: data (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

from xlm_core import XLMError
from xlm_core.config import RunConfig
from xlm_core.datasets.base import LandmarkSet, Sample

#: the seed of the k-fold split and the early-stopping carve (fixed: paired comparisons)
SPLIT_SEED = 0


@dataclass
class RunSamples:
    """The images of one run, split.

    Attributes:
        lset: the loaded dataset.
        fit: the samples trained on.
        val: the early-stopping / LR-schedule samples (carved from the training part).
        heldout: the cross-validation fold scored separately (None without folds).
        test: the dataset's test split.
    """

    lset: LandmarkSet
    fit: list[Sample]
    val: list[Sample]
    heldout: list[Sample] | None
    test: list[Sample]

    @property
    def train_part(self) -> list[Sample]:
        """Every image the run learns from (fit + val): the mean-shape baseline's source."""
        return self.fit + self.val

    def counts(self) -> dict:
        """How many samples each part holds.

        Returns:
            ``{"fit": int, "val": int, "heldout": int | None, "test": int}``.
        """
        return {
            "fit": len(self.fit),
            "val": len(self.val),
            "heldout": None if self.heldout is None else len(self.heldout),
            "test": len(self.test),
        }


def run_samples(cfg: RunConfig, lset: LandmarkSet | None = None) -> RunSamples:
    """Load the dataset of a run and split it (see the module docstring).

    Args:
        cfg: the run's configuration (dataset, root, options, ``train_limit``, ``folds``/``fold``,
            ``val_fraction``).
        lset: the dataset, already loaded with ``cfg``'s dataset, root and options; None loads
            it.

    Returns:
        :class:`RunSamples`.

    Raises:
        XLMError: for only one of ``folds``/``fold``, no training images, or no test images
            without a held-out fold (and as :func:`xlm_core.datasets.load_dataset`).
    """
    from xlm_core.datasets import carve_validation, grouped_kfold_split, kfold_split, load_dataset

    if lset is None:
        lset = load_dataset(cfg.dataset, cfg.root, **dict(cfg.extra or {}))
    if (cfg.folds is None) != (cfg.fold is None):
        raise XLMError("cross-validation needs both --folds N and --fold K")
    test_ids = list(lset.test_ids)
    heldout_ids = None
    if cfg.folds is not None and cfg.folds_over == "all":
        # every usable image is a test image once over the folds; a patient's images stay together
        every = [s.id for s in lset.samples]
        train_ids, test_ids = grouped_kfold_split(every, lset.groups(every), int(cfg.folds), int(cfg.fold),
                                                  seed=SPLIT_SEED)
        if cfg.train_limit is not None:
            train_ids = train_ids[: int(cfg.train_limit)]
    else:
        train_ids = list(lset.train_ids)
        if cfg.train_limit is not None:
            train_ids = train_ids[: int(cfg.train_limit)]
        if cfg.folds is not None:
            train_ids, heldout_ids = kfold_split(train_ids, int(cfg.folds), int(cfg.fold), seed=SPLIT_SEED)
    if not train_ids:
        raise XLMError(f"{lset.root}: no training images for dataset {lset.name!r}")
    fit_ids, val_ids = carve_validation(train_ids, float(cfg.val_fraction), seed=SPLIT_SEED)
    if not test_ids and heldout_ids is None:
        raise XLMError(f"{lset.root}: no test images for dataset {lset.name!r} (override the split: train=N)")
    return RunSamples(
        lset=lset,
        fit=lset.subset(fit_ids),
        val=lset.subset(val_ids),
        heldout=None if heldout_ids is None else lset.subset(heldout_ids),
        test=lset.subset(test_ids),
    )


__all__ = ["SPLIT_SEED", "RunSamples", "fit_steps_per_epoch", "run_samples"]


def fit_steps_per_epoch(n_fit: int, batch_size: int) -> int:
    """Optimiser steps of one epoch (the loader drops a last partial batch when it holds one full
    batch: :func:`xlm_core.torchdata.make_loader`)."""
    return max(1, n_fit // batch_size) if n_fit >= batch_size else 1


#: pixels per inference forward pass (validation loss, scoring): 16 images of 64x64
INFERENCE_PIXELS = 16 * 64 * 64
#: at most this many images per inference forward pass
INFERENCE_MAX_BATCH = 16


def inference_batch_size(batch_size: int, size_hw: tuple[int, int]) -> int:
    """Images per forward pass without gradients (validation loss, scoring, the MRE trace).

    At the demo's 64x64 a forward pass costs nearly as much for 2 images as for 16 (the
    weights, not the pixels, dominate: 112 against 68 ms an image for UNet++/VGG19 on one
    core, docs/decisions.md), so inference batches up to :data:`INFERENCE_PIXELS` pixels
    (16 images of 64x64); at the paper's 512x512 that is the training batch, as before.
    Eval-mode BatchNorm makes the scores independent of it.

    Args:
        batch_size: the run's training batch.
        size_hw: the inference grid (H, W).

    Returns:
        ``max(batch_size, min(16, INFERENCE_PIXELS // (H * W)))``.
    """
    pixels = max(1, int(size_hw[0]) * int(size_hw[1]))
    return max(int(batch_size), min(INFERENCE_MAX_BATCH, INFERENCE_PIXELS // pixels))
