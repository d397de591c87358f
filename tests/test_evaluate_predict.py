"""``xlm evaluate`` and ``xlm predict``: recomputed scores, any image format, clear errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from xlm_core import XLMError
from xlm_core.cli import main
from xlm_core.config import RunConfig
from xlm_core.datasets.synth import write_phantoms
from xlm_core.evaluation import evaluate_run
from xlm_core.imageio import read_image
from xlm_core.landmark_csv import read_landmark_csv
from xlm_core.predict import predict
from xlm_core.training import train_and_evaluate


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[RunConfig, dict]:
    """A 1-epoch run on 5 synthetic hands (W 48 x H 64); tested at 64x48, not a multiple of 32."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLM_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("XLM_PROGRESS", "0")
        root = write_phantoms("hand", tmp_path_factory.mktemp("data") / "hand", n=5, seed=0, size_wh=(48, 64))
        cfg = RunConfig(dataset="hand", root=str(root), out=str(tmp_path_factory.mktemp("runs") / "run"),
                        arch="unet", encoder="resnet18", epochs=1, train_size=(32, 32), test_size=(64, 48),
                        batch_size=2, device="cpu", extra={"train": 3})
        metrics = train_and_evaluate(cfg)
        yield cfg, metrics


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["clean", "zhu"])
def test_evaluate_run_recomputes_the_metrics(run, protocol):
    cfg, metrics = run
    score = evaluate_run(cfg.out, protocol)
    expected = metrics["test"][protocol]
    assert score["n_images"] == expected["n_images"] == 2
    assert score["mre"] == pytest.approx(expected["mre"], rel=1e-9)
    assert score["mean_shape_mre"] == pytest.approx(expected["mean_shape_mre"], rel=1e-9)
    assert score["sdr"] == pytest.approx(expected["sdr"])


@pytest.mark.slow
def test_cli_evaluate_json(run, capsys):
    cfg, metrics = run
    assert main(["evaluate", cfg.out, "--protocol", "zhu", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["protocol"] == "zhu" and printed["mre"] == pytest.approx(metrics["test"]["zhu"]["mre"])


def test_evaluate_without_checkpoint_names_the_folder(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 1
    assert str(tmp_path / "checkpoint.pt") in capsys.readouterr().err


@pytest.mark.slow
def test_predict_any_format_matches_evaluation(run, tmp_path):
    """bmp/png/mha/DICOM copies of the test images give the predictions of the evaluation."""
    cfg, _ = run
    evaluated = read_landmark_csv(Path(cfg.out) / "predictions.csv")
    jpgs = sorted(Path(cfg.root, "jpg").glob("*.jpg"))[-2:]  # the test split: the last ids
    images = []
    for jpg, fmt in zip(jpgs, ("mha", "dcm")):
        pixels = (read_image(jpg) * 255 + 0.5).astype(np.uint8)
        for ext in (".png", ".bmp"):
            path = tmp_path / "in" / f"{jpg.stem}_{ext[1:]}{ext}"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(pixels, mode="L").save(path)
            images.append(path)
        path = tmp_path / "in" / f"{jpg.stem}_{fmt}.{fmt}"
        sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
        images.append(path)
        images.append(jpg)

    out = tmp_path / "pred"
    summary = main(["predict", str(Path(cfg.out) / "checkpoint.pt"), *map(str, images), "--out", str(out)])
    assert summary == 0
    predicted = read_landmark_csv(out / "landmarks.csv")
    assert len(predicted) == len(images) == 8
    for image_id, xy in predicted.items():
        stem = image_id.split("_")[0]
        assert xy.shape == (37, 2)
        np.testing.assert_allclose(xy, evaluated[stem], atol=1e-3, err_msg=image_id)
    doc = json.loads((out / "landmarks.json").read_text())
    assert len(doc["images"]) == 8 and len(doc["landmark_names"]) == 37
    for entry in doc["images"]:
        with Image.open(out / entry["overlay"]) as overlay:
            assert overlay.size == (entry["width"], entry["height"]) == (48, 64)


@pytest.mark.slow
def test_predict_non_image_is_listed_and_the_rest_predicted(run, tmp_path):
    cfg, _ = run
    out = tmp_path / "pred"
    out.mkdir()
    (out / "keep.txt").write_text("untouched")
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not an image")
    good = min(Path(cfg.root, "jpg").glob("*.jpg"))
    summary = predict(Path(cfg.out) / "checkpoint.pt", [good, not_image], out)
    assert [u["file"] for u in summary["unreadable"]] == [str(not_image)]
    assert "cannot decode image" in summary["unreadable"][0]["reason"]
    assert list(read_landmark_csv(out / "landmarks.csv")) == [good.stem]
    assert (out / "keep.txt").read_text() == "untouched"
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
    with pytest.raises(XLMError, match="no readable image.*notes.png"):
        predict(Path(cfg.out) / "checkpoint.pt", [not_image], tmp_path / "none")
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_corrupt_or_foreign_checkpoint_is_a_clear_error(run, tmp_path):
    cfg, _ = run
    ckpt_path = Path(cfg.out) / "checkpoint.pt"
    image = min(Path(cfg.root, "jpg").glob("*.jpg"))

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt_path.read_bytes()[:5000])
    with pytest.raises(XLMError, match="truncated.pt"):
        predict(truncated, [image], tmp_path / "p1")

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    foreign = tmp_path / "foreign.pt"
    torch.save({**ckpt, "arch": "unetplusplus"}, foreign)  # U-Net weights labelled U-Net++
    with pytest.raises(XLMError, match="foreign.pt"):
        predict(foreign, [image], tmp_path / "p2")

    # transfer from a checkpoint of another architecture: refused, run directory left empty
    out = tmp_path / "run"
    with pytest.raises(XLMError, match="foreign.pt"):
        train_and_evaluate(replace(cfg, out=str(out), arch="unetplusplus", init=str(foreign)))
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "p1").exists() and not (tmp_path / "p2").exists()
