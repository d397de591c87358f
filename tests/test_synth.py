"""Phantom datasets: real layouts, reproducible bytes, landmarks on visible features."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage

from xlm_core import XLMError
from xlm_core.cli import main
from xlm_core.datasets import check_dataset, load_dataset
from xlm_core.datasets.synth import DEFAULT_SIZES_WH, N_LANDMARKS, draw_phantom, write_phantoms

TINY = {"head": (48, 60), "hand": (46, 64), "chest": (48, 48)}


def _digest(root) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("anatomy", ["head", "hand", "chest"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, anatomy):
    a = write_phantoms(anatomy, tmp_path / "a", n=2, seed=5, size_wh=TINY[anatomy])
    b = write_phantoms(anatomy, tmp_path / "b", n=2, seed=5, size_wh=TINY[anatomy])
    c = write_phantoms(anatomy, tmp_path / "c", n=2, seed=6, size_wh=TINY[anatomy])
    assert _digest(a) == _digest(b)
    differing = {k for k, v in _digest(c).items() if _digest(a).get(k) != v}
    assert any(not k.endswith(".json") for k in differing)


@pytest.mark.parametrize("anatomy", ["head", "hand", "chest"])
def test_phantoms_pass_check_and_load_with_the_real_loader(tmp_path, anatomy):
    root = write_phantoms(anatomy, tmp_path / anatomy, n=3, seed=0, size_wh=TINY[anatomy])
    report = check_dataset(anatomy, root)
    assert report.ok and report.problems == [], report.as_text()
    assert report.images == 3 and report.landmarks == N_LANDMARKS[anatomy]
    lset = load_dataset(anatomy, root)
    assert lset.synthetic
    marker = json.loads((root / "SYNTHETIC.json").read_text())
    assert (marker["anatomy"], marker["n"], marker["seed"]) == (anatomy, 3, 0)
    assert marker["generator_version"] >= 1
    # what the loader reads is what was drawn (up to the 2-decimal text format)
    _, drawn = draw_phantom(anatomy, 0, 0, TINY[anatomy])
    loaded = lset.samples[0].landmarks
    if anatomy == "head":  # mean of senior (= drawn) and junior (= senior + small offset)
        assert np.abs(loaded - drawn).max() < 0.05 * TINY["head"][0]
        senior = load_dataset("head", root, annotator="senior").samples[0].landmarks
        np.testing.assert_allclose(senior, drawn, atol=0.006)
    else:
        np.testing.assert_allclose(loaded, drawn, atol=0.006 if anatomy == "hand" else 1e-3)


def test_default_sizes_follow_the_real_aspect_ratios():
    w, h = DEFAULT_SIZES_WH["head"]
    assert abs(w / h - 1935 / 2400) < 0.01
    w, h = DEFAULT_SIZES_WH["hand"]
    assert 0.6 < w / h < 0.8
    w, h = DEFAULT_SIZES_WH["chest"]
    assert w == h


@pytest.mark.parametrize("anatomy", ["head", "hand", "chest"])
def test_landmarks_sit_on_local_structure_and_shapes_vary(anatomy):
    """Each landmark's 9x9 neighbourhood has contrast well above the noise in every image."""
    drawn = [draw_phantom(anatomy, i, 11) for i in range(3)]
    for image, landmarks in drawn:
        h, w = image.shape
        assert (w, h) == DEFAULT_SIZES_WH[anatomy]
        assert landmarks.shape == (N_LANDMARKS[anatomy], 2)
        assert (landmarks >= 1).all() and (landmarks[:, 0] < w - 1).all() and (landmarks[:, 1] < h - 1).all()
        pixels = image.astype(np.float64) / 255.0
        mean = ndimage.uniform_filter(pixels, 9)
        local_std = np.sqrt(np.maximum(ndimage.uniform_filter(pixels**2, 9) - mean**2, 0))
        ix = np.round(landmarks).astype(int)
        at_landmarks = local_std[ix[:, 1], ix[:, 0]]
        assert at_landmarks.min() > 0.025, np.round(at_landmarks, 3)
    moved = np.abs(drawn[0][1] - drawn[1][1]).mean()
    assert moved > 1.0  # pose and proportions change between images


def test_labelme_format_loads_with_the_generic_loader(tmp_path):
    root = write_phantoms("hand", tmp_path / "lm", n=2, seed=2, size_wh=TINY["hand"], fmt="labelme")
    assert sorted(p.name for p in (root / "images").iterdir()) == ["1001.json", "1001.png", "1002.json", "1002.png"]
    lset = load_dataset("labelme", root)
    assert lset.n_landmarks == 37 and len(lset.samples) == 2 and lset.synthetic


def test_refuses_real_looking_folder_and_replaces_an_earlier_phantom_set(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "all.csv").write_text("1,2,3\n")
    with pytest.raises(XLMError, match="refusing"):
        write_phantoms("hand", real, n=1)
    assert (real / "all.csv").read_text() == "1,2,3\n"
    root = write_phantoms("chest", tmp_path / "p", n=3, size_wh=TINY["chest"])
    write_phantoms("chest", root, n=2, size_wh=TINY["chest"])
    assert len(list((root / "pngs").iterdir())) == 2  # no stale image from the first run


def test_cli_synth_then_check_json(tmp_path, capsys):
    out = tmp_path / "head"
    assert main(["data", "synth", "head", str(out), "--n", "2", "--seed", "1", "--size", "48x60"]) == 0
    capsys.readouterr()
    assert main(["data", "check", "head", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 2 and report["landmarks"] == 19 and report["problems"] == []
    assert main(["data", "check", "head", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
