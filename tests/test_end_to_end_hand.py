"""Real data through every stage: the 9 real hand x-rays, trained 2 epochs at 64x64, evaluated.

No accuracy claim (9 images, 2 epochs): the test checks that real images, the real CSV and
the real scale rule flow through loading, caching, augmentation, training, checkpointing,
both evaluation protocols and the outputs.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from xlm_core.cli import main


@pytest.mark.slow
def test_train_and_evaluate_real_hands(hand_root: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("XLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XLM_PROGRESS", "0")
    out = tmp_path / "run"
    status = main([
        "train", "--dataset", "hand", "--root", str(hand_root), "--arch", "unet", "--encoder", "resnet18",
        "--epochs", "2", "--train-size", "64", "64", "--test-size", "64", "48", "--batch-size", "2",
        "--device", "cpu", "--option", "train=6", "--out", str(out),
    ])
    assert status == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt", "history.csv", "predictions.csv", "predictions_grid.npz", "metrics.json"}

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data_source"] == "real" and metrics["dataset"] == "hand"
    assert metrics["unit"] == "mm" and metrics["wrist_pair"] == [2, 6]  # Payer's pair, named
    assert metrics["splits"] == {"fit": 5, "val": 1, "heldout": None, "test": 3}
    assert metrics["epochs_run"] == 2 and metrics["config"]["extra"] == {"train": 6}
    for protocol in ("clean", "zhu"):
        score = metrics["test"][protocol]
        assert score["n_images"] == 3 and score["n_landmarks"] == 37 and score["unit"] == "mm"
        assert math.isfinite(score["mre"]) and score["mre"] > 0
        assert math.isfinite(score["mean_shape_mre"]) and score["mean_shape_mre"] > 0

    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 3 * 37
    ids = sorted({r["image_id"] for r in rows})
    assert ids == ["7088", "7232", "7236"]  # the last three ids in natural order
    assert all(r["split"] == "test" and math.isfinite(float(r["error"])) for r in rows)
    # predictions are in original pixels (the hand images are about 1500-2500 px wide)
    assert max(float(r["x"]) for r in rows) > 100

    history = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in history] == [1, 2]

    capsys.readouterr()  # drop the training log
    assert main(["evaluate", str(out), "--json"]) == 0
    recomputed = json.loads(capsys.readouterr().out)
    assert recomputed["mre"] == pytest.approx(metrics["test"]["clean"]["mre"], rel=1e-9)
