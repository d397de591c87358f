"""``xlm predict``: every readable image predicted, the others listed, folders, legible overlays, --gt.

Uses an untrained tiny checkpoint (tests/bad_inputs.py) and the real chest sample images: the
landmark values do not matter here, only what is written and said.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import write_non_image, write_tiny_checkpoint
from PIL import Image

from xlm_core import XLMError
from xlm_core.landmark_csv import read_landmark_csv, write_landmark_csv
from xlm_core.predict import add_predict_arguments, overlay_scale, predict


def _run(argv: list[str]) -> int:
    """``xlm predict`` as cli/train.py registers it (add_predict_arguments)."""
    parser = argparse.ArgumentParser(prog="xlm predict")
    add_predict_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def setup(chest_root, tmp_path, monkeypatch):
    monkeypatch.setenv("XLM_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "images"
    folder.mkdir()
    for k in (1, 2):
        name = f"CHNCXR_000{k}_0.png"
        (folder / name).write_bytes((chest_root / "pngs" / name).read_bytes())
    return {"ckpt": write_tiny_checkpoint(tmp_path / "ckpt.pt"), "folder": folder, "tmp": tmp_path}


def test_folder_and_a_bad_image_predicts_the_rest_and_exits_nonzero(setup, capsys):
    bad = write_non_image(setup["folder"] / "notes.png")
    truncated = setup["folder"] / "cut.png"
    data = (setup["folder"] / "CHNCXR_0001_0.png").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    missing = setup["tmp"] / "absent.png"
    out = setup["tmp"] / "pred"
    code = _run([str(setup["ckpt"]), str(setup["folder"]), str(missing), "--out", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(read_landmark_csv(out / "landmarks.csv")) == ["CHNCXR_0001_0", "CHNCXR_0002_0"]
    doc = json.loads((out / "landmarks.json").read_text())
    reasons = {Path(u["file"]).name: u["reason"] for u in doc["unreadable"]}
    assert set(reasons) == {"notes.png", "cut.png", "absent.png"}
    assert "cannot decode image" in reasons["notes.png"] and "truncated" in reasons["cut.png"]
    assert "not found" in reasons["absent.png"]
    assert str(bad) in captured.err and "3 of 5 images unreadable" in captured.err
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in out.glob("*.png")) == ["CHNCXR_0001_0_landmarks.png",
                                                         "CHNCXR_0002_0_landmarks.png"]


def test_all_good_exits_zero(setup):
    out = setup["tmp"] / "pred"
    assert _run([str(setup["ckpt"]), str(setup["folder"]), "--out", str(out), "--device", "cpu"]) == 0
    assert json.loads((out / "landmarks.json").read_text())["unreadable"] == []


def test_nothing_readable_writes_nothing(setup):
    out = setup["tmp"] / "pred"
    with pytest.raises(XLMError, match="no readable image.*notes.png"):
        predict(setup["ckpt"], [write_non_image(setup["tmp"] / "notes.png")], out, device="cpu")
    assert not out.exists()


def test_empty_folder_is_named(setup):
    empty = setup["tmp"] / "empty"
    empty.mkdir()
    with pytest.raises(XLMError, match="empty: folder holds no image file"):
        predict(setup["ckpt"], [empty], setup["tmp"] / "pred", device="cpu")


def test_overlay_labels_scale_with_the_image():
    assert overlay_scale(64, 48) == (2.0, 10)  # floors keep a tiny image readable
    radius, font = overlay_scale(2400, 1935)
    assert font == round(1935 / 40) and radius == pytest.approx(1935 / 120)
    assert overlay_scale(4000, 4000)[1] > overlay_scale(1000, 1000)[1] > overlay_scale(200, 200)[1]


def _label_height(path: Path) -> int:
    """Rows holding the yellow label colour (255, 220, 0) in an overlay: the label's height."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    yellow = (pixels[..., 0] > 200) & (pixels[..., 1] > 180) & (pixels[..., 2] < 60)
    return int(yellow.any(axis=1).sum())


def test_labels_are_drawn_larger_on_a_large_image(setup, tmp_path):
    from xlm_core.predict import draw_overlay

    xy = np.array([[20.0, 20.0]])
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    draw_overlay(np.zeros((200, 200)), xy * 1, small)
    draw_overlay(np.zeros((2000, 2000)), xy * 10, large)
    assert _label_height(large) > 4 * _label_height(small) > 0


def test_gt_is_drawn_beside_the_prediction(setup):
    image = setup["folder"] / "CHNCXR_0001_0.png"
    gt = setup["tmp"] / "gt.csv"
    with Image.open(image) as im:
        w, h = im.size
    truth = np.column_stack([np.linspace(0.2, 0.8, 6) * w, np.full(6, 0.5 * h)])
    write_landmark_csv(gt, {"CHNCXR_0001_0": truth})
    out = setup["tmp"] / "pred"
    plain = setup["tmp"] / "plain"
    assert _run([str(setup["ckpt"]), str(image), "--out", str(plain), "--device", "cpu"]) == 0
    assert _run([str(setup["ckpt"]), str(image), "--out", str(out), "--gt", str(gt), "--device", "cpu"]) == 0
    doc = json.loads((out / "landmarks.json").read_text())
    assert doc["images"][0]["ground_truth_drawn"] and doc["without_ground_truth"] == []
    green = np.asarray(Image.open(out / "CHNCXR_0001_0_landmarks.png").convert("RGB")).astype(int)
    before = np.asarray(Image.open(plain / "CHNCXR_0001_0_landmarks.png").convert("RGB")).astype(int)
    mask = (green[..., 1] > 200) & (green[..., 0] < 80) & (green[..., 2] < 80)
    assert mask.sum() > 0 and not ((before[..., 1] > 200) & (before[..., 0] < 80) & (before[..., 2] < 80)).any()
    x, y = truth[0].round().astype(int)
    assert mask[y - 3:y + 4, x - 3:x + 4].any()  # a green cross at the first true landmark


def test_gt_with_the_wrong_landmark_count_is_named(setup):
    gt = setup["tmp"] / "gt.csv"
    write_landmark_csv(gt, {"CHNCXR_0001_0": np.ones((5, 2))})
    with pytest.raises(XLMError, match="gt.csv.*5 landmarks.*predicts 6"):
        predict(setup["ckpt"], [setup["folder"]], setup["tmp"] / "pred", device="cpu", gt=gt)


def test_random_bytes_are_not_a_pytorch_file(setup):
    noise = setup["tmp"] / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(XLMError, match=r"noise\.pt: not a PyTorch file"):
        predict(noise, [setup["folder"]], setup["tmp"] / "pred", device="cpu")


def test_xlm_predict_command_is_wired(setup, capsys):
    from xlm_core.cli import main

    write_non_image(setup["folder"] / "notes.png")
    out = setup["tmp"] / "pred"
    assert main(["predict", str(setup["ckpt"]), str(setup["folder"]), "--out", str(out), "--device", "cpu"]) == 1
    assert "notes.png" in capsys.readouterr().err
    assert sorted(read_landmark_csv(out / "landmarks.csv")) == ["CHNCXR_0001_0", "CHNCXR_0002_0"]
