"""Models that learn: a regression guard for the whole training path.

A seeded CPU run of the real ``train_and_evaluate`` on a few synthetic chest phantoms, for a
fixed number of optimiser steps, must end with a test MRE well below the mean-shape
baseline's (the mean training shape placed on the same test images). A change that silently
stops the model from learning (a wrong target scale, a loss/decoder mismatch, an optimiser
that never steps, inverted coordinates, a broken augmentation of the landmarks) fails it.

It uses a small encoder (U-Net / ResNet-18) so that it stays under a minute on two CPU
cores; UNet++/VGG19, the study's transfer model, needs about three times the time per step
(see benchmarks/demo_budget.py for its steps to the floor). The guard was checked to fail
with ``lr = 0`` (the model stays at its random initialisation: ratio > 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xlm_core.config import RunConfig

MARGIN = 0.5  # test MRE must be <= MARGIN x mean-shape MRE
ARCH, ENCODER = "unet", "resnet18"
LOSS, LR, SIGMA = "spatial_ce", 1e-3, 1.5
N_PHANTOMS = 32  # chest: 26 train (22 fit + 4 val), 6 test
EPOCHS = 8  # 11 steps per epoch (22 fit images, batch 2): 88 steps


@pytest.fixture(scope="module")
def chest_phantoms(tmp_path_factory) -> Path:
    from xlm_core.datasets.synth import write_phantoms

    return write_phantoms("chest", tmp_path_factory.mktemp("phantoms") / "chest", n=N_PHANTOMS, seed=0)


def guard_run(root: Path, out: Path, lr: float = LR) -> dict:
    """The guard's run (seeded, CPU, 64x64): returns its metrics.json."""
    import torch

    from xlm_core.training import train_and_evaluate

    torch.set_num_threads(2)
    cfg = RunConfig(dataset="chest", root=str(root), out=str(out), arch=ARCH, encoder=ENCODER,
                    encoder_weights="none", epochs=EPOCHS, patience=EPOCHS, train_size=(64, 64),
                    test_size=(64, 64), batch_size=2, lr=lr, loss=LOSS, sigma=SIGMA, seed=0,
                    device="cpu", val_fraction=0.15)
    return train_and_evaluate(cfg)


@pytest.mark.slow
def test_a_short_run_beats_the_mean_shape_by_a_clear_margin(chest_phantoms, tmp_path):
    metrics = guard_run(chest_phantoms, tmp_path / "run")
    ratio = metrics["mre"] / metrics["mean_shape_mre"]
    steps = metrics["epochs_run"] * (metrics["splits"]["fit"] // 2)
    assert metrics["data_source"] == "synthetic" and metrics["headline_split"] == "test"
    assert metrics["mean_shape_mre"] > 0
    assert ratio <= MARGIN, (
        f"after {steps} steps the model's test MRE is {metrics['mre']:.3f} {metrics['unit']}, "
        f"{ratio:.2f} x the mean shape's {metrics['mean_shape_mre']:.3f}: it no longer learns "
        f"(expected <= {MARGIN}); best epoch {json.dumps(metrics.get('best_epoch'))}"
    )
