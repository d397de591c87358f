"""The two public sets large enough to train on: ``ceph`` (Hamedan) and ``spine`` (AASCE).

Every expected value is computed here from the raw files (LabelMe JSON, the AASCE CSVs, the
image sizes) with json/csv/numpy/PIL, not through the loaders, or pinned from such a
computation; the loader must agree. The tests that read the shared samples skip when
``../shared/data`` (or ``XLM_SHARED_DATA``) lacks ``hamedan_university_dataset/`` and
``boostnet_labeldata/``; the format tests build their own small files.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xlm_core import XLMError
from xlm_core.cli import main
from xlm_core.datasets import PreprocessCache, builtin_descriptor, load_dataset, loader_options
from xlm_core.datasets.descriptor import parse_descriptor
from xlm_core.imageio import read_image
from xlm_core.report.analysis import human_limit_from_dataset

CEPH = "hamedan_university_dataset"
SPINE = "boostnet_labeldata"
READERS = {"mollabashi": "annotated by  Dr.mollabashi", "farhadifar": "annotated by Dr.farhadifar"}
BROKEN = ["002", "009", "010", "064", "086", "098", "109", "137", "140"]
OUTSIDE_ID = "sunhl-1th-25-Jul-2016-49 A AP"  # landmark 64 at y = 1.0245 H


def _raw_points(path: Path) -> dict[int, list[tuple[float, float]]]:
    """1-based landmark -> its points, straight from a LabelMe file (labels ``l1``..``l19``)."""
    out: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    for shape in json.loads(path.read_text())["shapes"]:
        out[int(shape["label"].lower().lstrip("l"))].append(tuple(shape["points"][0]))
    return out


def _raw_reader(root: Path, reader: str, image_id: str) -> np.ndarray:
    points = _raw_points(root / CEPH / READERS[reader] / f"{image_id}.json")
    return np.array([points[k][0] for k in range(1, 20)], dtype=np.float64)


def _raw_problems(root: Path) -> dict[str, list[str]]:
    """image id -> ``"<reader folder>/<id>.json: duplicated [k]|missing [k]"`` from the raw files."""
    found: dict[str, list[str]] = {}
    for folder in READERS.values():
        for path in sorted((root / CEPH / folder).glob("*.json")):
            counts = {k: len(v) for k, v in _raw_points(path).items()}
            duplicated = sorted(k for k, n in counts.items() if n > 1)
            missing = [k for k in range(1, 20) if k not in counts]
            if duplicated:
                found.setdefault(path.stem, []).append(f"{folder}/{path.name}: duplicated {duplicated}")
            if missing:
                found.setdefault(path.stem, []).append(f"{folder}/{path.name}: missing {missing}")
    return found


# --------------------------------------------------------------------------- ceph


def test_ceph_reads_the_94_and_names_the_9_broken(real_sets_root):
    lset = load_dataset("ceph", real_sets_root)
    assert lset.root == real_sets_root / CEPH  # the data root leads to the repository's folder
    assert lset.images_found == 103 and len(lset.samples) == 94 and lset.n_landmarks == 19
    assert lset.landmark_names[0] == "sella" and lset.landmark_names[18] == "articulare"
    assert lset.scale.unit == "px" and lset.thresholds == (14.0, 17.5, 21.0, 28.0)

    raw = _raw_problems(real_sets_root)
    assert sorted(raw) == BROKEN  # the README's nine, found in the raw files
    reasons = dict(lset.dropped)
    assert sorted(reasons) == BROKEN
    for image_id, items in raw.items():
        for item in items:  # each reader file and landmark the raw files show, in the reason
            where, what = item.split(": ")
            kind, numbers = what.split(" ", 1)
            words = "landmarks given more than once: " if kind == "duplicated" else "missing "
            assert f"{where}: " in reasons[image_id] and words + numbers in reasons[image_id], (image_id, item)
    assert reasons["086"].count(".json") == 1 and "Dr.mollabashi/086.json" in reasons["086"]
    assert "missing [16]" in reasons["086"] and "more than once: [13, 14]" in reasons["109"]

    # ground truth = the mean of both readers' raw points; a JSON annotates the picture with its
    # own stem, not its imagePath (100.json says "107.tif": the readers' old numbering)
    by_id = lset.by_id()
    for image_id in ("001", "050", "100"):
        expected = (_raw_reader(real_sets_root, "mollabashi", image_id)
                    + _raw_reader(real_sets_root, "farhadifar", image_id)) / 2
        np.testing.assert_allclose(by_id[image_id].landmarks, expected, rtol=0, atol=1e-9)
        assert by_id[image_id].image.name == f"{image_id}.tif" and by_id[image_id].size_wh == (1340, 1671)
    assert json.loads((real_sets_root / CEPH / READERS["farhadifar"] / "100.json").read_text())["imagePath"] == "107.tif"
    assert not set(BROKEN) & set(by_id)


def test_ceph_root_split_and_options(real_sets_root):
    via_data_root = load_dataset("ceph", real_sets_root)
    direct = load_dataset("ceph", real_sets_root / CEPH)
    assert [s.id for s in direct.samples] == [s.id for s in via_data_root.samples]
    assert direct.root == via_data_root.root
    usable = {s.id for s in direct.samples}
    expected_test = [f"{i:03d}" for i in range(71, 101) if f"{i:03d}" in usable]
    assert direct.test_ids == expected_test and len(expected_test) == 28
    assert direct.train_ids == sorted(usable - set(expected_test)) and len(direct.train_ids) == 66
    assert loader_options("ceph") == ["annotator", "strict", "train", "verify_images"]
    one = load_dataset("ceph", real_sets_root, annotator="farhadifar")
    assert "009" in one.by_id()  # broken only in Dr. Mollabashi's file
    np.testing.assert_allclose(one.by_id()["001"].landmarks, _raw_reader(real_sets_root, "farhadifar", "001"))
    with pytest.raises(XLMError, match="annotator must be one of"):
        load_dataset("ceph", real_sets_root, annotator="senior")
    with pytest.raises(XLMError, match=r"pictures does not exist.*holding hamedan_university_dataset/"):
        load_dataset("ceph", real_sets_root / SPINE)


def test_ceph_human_limit_against_numpy(real_sets_root):
    ids = ["001", "003", "050"]
    rows = {r["comparison"]: r for r in human_limit_from_dataset(real_sets_root, ids=ids, dataset="ceph")}
    assert set(rows) == {"mollabashi vs mean", "farhadifar vs mean", "mollabashi vs farhadifar"}
    a = np.stack([_raw_reader(real_sets_root, "mollabashi", i) for i in ids])
    b = np.stack([_raw_reader(real_sets_root, "farhadifar", i) for i in ids])
    between = np.linalg.norm(a - b, axis=-1)  # (3, 19) px
    to_mean = np.linalg.norm(a - (a + b) / 2, axis=-1)
    for name, errors in (("mollabashi vs farhadifar", between), ("mollabashi vs mean", to_mean),
                         ("farhadifar vs mean", to_mean)):
        row = rows[name]
        assert (row["n_images"], row["n_landmarks"], row["unit"]) == (3, 19, "px")
        assert row["mre"] == pytest.approx(errors.mean(), rel=1e-12)
        assert list(row["sdr"].values()) == pytest.approx(
            [100 * (errors <= t).mean() for t in (14.0, 17.5, 21.0, 28.0)])
    # the test split (28 images) and all 94 usable images, pinned from the numpy above
    test = {r["comparison"]: r for r in human_limit_from_dataset(real_sets_root, dataset="ceph")}
    assert test["mollabashi vs farhadifar"]["n_images"] == 28
    assert round(test["mollabashi vs farhadifar"]["mre"], 3) == 11.552
    assert round(test["mollabashi vs mean"]["mre"], 3) == 5.776
    every = load_dataset("ceph", real_sets_root)
    rows = {r["comparison"]: r for r in human_limit_from_dataset(
        real_sets_root, ids=[s.id for s in every.samples], dataset="ceph")}
    assert round(rows["mollabashi vs farhadifar"]["mre"], 3) == 11.427
    assert rows["mollabashi vs farhadifar"]["mre"] == pytest.approx(every.annotator_disagreement["mre_px"])
    assert [round(v, 2) for v in rows["mollabashi vs farhadifar"]["sdr"].values()] == [72.79, 80.52, 87.18, 93.73]
    assert [round(v, 2) for v in rows["mollabashi vs mean"]["sdr"].values()] == [93.73, 97.37, 99.16, 99.83]
    with pytest.raises(XLMError, match=r"no mollabashi and farhadifar annotations for images \[.086.\]"):
        human_limit_from_dataset(real_sets_root, ids=["001", "086"], dataset="ceph")
    with pytest.raises(XLMError, match="needs two"):
        human_limit_from_dataset(real_sets_root, dataset="spine")


# --------------------------------------------------------------------------- spine


def _spine_table(root: Path) -> tuple[list[str], np.ndarray]:
    folder = root / SPINE / "labels" / "training"
    names = [line.strip() for line in (folder / "filenames.csv").read_text().splitlines() if line.strip()]
    with open(folder / "landmarks.csv", newline="") as fh:
        ratios = np.array([[float(v) for v in row] for row in csv.reader(fh)])
    return names, ratios


def _out_of_order(names: list[str], ratios: np.ndarray) -> set[str]:
    """Ids whose vertebra centres (mean y ratio of each vertebra's four corners) do not increase
    strictly from T1 to L5, computed from the raw table (y ratios x height keep the order)."""
    centres = ratios[:, 68:].reshape(len(names), 17, 4).mean(axis=2)
    return {Path(n).stem for n, c in zip(names, centres, strict=True) if (np.diff(c) <= 0).any()}


def test_spine_reads_every_image_and_refuses_the_broken(real_sets_root):
    lset = load_dataset("spine", real_sets_root)
    names, ratios = _spine_table(real_sets_root)
    assert len(names) == 481 and ratios.shape == (481, 136)
    assert lset.root == real_sets_root / SPINE
    broken = _out_of_order(names, ratios)
    assert len(broken) == 24 and OUTSIDE_ID in broken  # the public correction lists as many
    assert lset.images_found == 481 and len(lset.samples) == 457 and lset.n_landmarks == 68
    assert lset.scale.unit == "px" and lset.thresholds == (10.0, 20.0, 40.0)
    dropped = dict(lset.dropped)
    assert set(dropped) == broken
    assert all("out of anatomical order" in why for why in dropped.values())
    # the 22 rows with L5 given above L4 name vertebrae 16 and 17; one names 1 and 2
    assert sum("group 17 (landmarks 65-68" in why for why in dropped.values()) == 23
    row = names.index(OUTSIDE_ID + ".jpg")
    assert ratios[row, 68 + 63] > 1  # landmark 64's y ratio, from the raw CSV
    why = dropped[OUTSIDE_ID]
    assert "row 395" in why and "outside" in why and "64 at" in why  # both of its problems named

    # one image by hand: ratio x width, ratio y height (x ratios first, then y ratios)
    by_id = lset.by_id()
    for k in (0, 200, 479):
        image_id = Path(names[k]).stem
        width, height = Image.open(real_sets_root / SPINE / "data" / "training" / names[k]).size
        expected = np.stack([ratios[k, :68] * width, ratios[k, 68:] * height], axis=1)
        np.testing.assert_allclose(by_id[image_id].landmarks, expected, rtol=1e-12)
    first = by_id["sunhl-1th-02-Jan-2017-162 A AP"]  # 755x2125; row 1 starts 0.47815, y1 0.033882
    assert first.size_wh == (755, 2125)
    np.testing.assert_allclose(first.landmarks[0], [0.47815 * 755, 0.033882 * 2125])
    assert first.landmarks[0] == pytest.approx([361.00325, 71.99925])


def test_spine_split_keeps_each_series_on_one_side(real_sets_root):
    lset = load_dataset("spine", real_sets_root / SPINE)
    series = {s.id: re.search(r"-20\d\d-(\d+) ", s.id + " ") for s in lset.samples}
    expected = {i for i, m in series.items() if m and int(m.group(1)) >= 240}
    assert set(lset.test_ids) == expected and len(expected) == 87  # 97 listed, 10 refused
    assert len(lset.train_ids) == 370 and not set(lset.train_ids) & set(lset.test_ids)
    number = {i: m.group(1) for i, m in series.items() if m}
    assert not {number[i] for i in lset.train_ids if i in number} & {number[i] for i in lset.test_ids}


def test_images_decode_grey_at_their_size(real_sets_root):
    tif = real_sets_root / CEPH / "pictures" / "001.tif"
    with Image.open(tif) as image:
        assert image.info.get("compression") == "tiff_adobe_deflate" and image.mode == "L"
    array = read_image(tif)
    assert array.shape == (1671, 1340) and array.dtype == np.float32
    assert 0 <= array.min() < 0.1 and array.max() == 1.0 and array.std() > 0.05
    jpg = real_sets_root / SPINE / "data" / "training" / "sunhl-1th-02-Jan-2017-162 A AP.jpg"
    with Image.open(jpg) as image:
        assert image.mode == "L"
    assert read_image(jpg).shape == (2125, 755)


def test_spine_through_the_preprocessing_cache(real_sets_root, tmp_path):
    lset = load_dataset("spine", real_sets_root)
    samples = lset.samples[:40]  # all 480 take ~12 s cold, 0.6 s warm (240 MB at 512x256)
    cold = PreprocessCache(tmp_path / "cache")
    start = time.perf_counter()
    arrays = [cold.load(s.image, (512, 256)) for s in samples]
    cold_s = time.perf_counter() - start
    warm = PreprocessCache(tmp_path / "cache")
    start = time.perf_counter()
    again = [warm.load(s.image, (512, 256)) for s in samples]
    warm_s = time.perf_counter() - start
    assert all(a.shape == (512, 256) and a.dtype == np.float32 for a in arrays)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, again))
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 40  # ids with spaces, one entry each
    assert cold_s < 30 and warm_s < cold_s  # generous: two shared cores


# --------------------------------------------------------------------------- the CLI


def test_data_check_ceph_and_spine(real_sets_root, capsys):
    assert main(["data", "check", "ceph", str(real_sets_root)]) == 1  # nine images unusable
    text = capsys.readouterr().out
    assert "103 image files found, 94 usable annotated images, 9 unusable, 19 landmarks" in text
    assert f"unusable images (skipped by every loader): {', '.join(BROKEN)}" in text
    assert "ERROR annotated by  Dr.mollabashi/140.json: landmarks given more than once: [1]" in text
    assert "inter-annotator MRE (mollabashi vs farhadifar, 94 images): 11.427 px" in text
    assert "of the 150 annotated images of the full ceph set (141 usable)" in text

    assert main(["data", "check", "spine", str(real_sets_root), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["images_found"], report["images"], report["unusable_images"]) == (481, 457, 24)
    assert OUTSIDE_ID in [d["image_id"] for d in report["dropped"]] and "where" not in report  # the full split
    assert main(["data", "check", "ceph", str(real_sets_root), "--annotator", "farhadifar", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 102 and [d["image_id"] for d in report["dropped"]] == ["002"]


@pytest.mark.slow
def test_tiny_training_run_on_ceph(real_sets_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XLM_PROGRESS", "0")
    out = tmp_path / "run"
    status = main([
        "train", "--dataset", "ceph", "--root", str(real_sets_root), "--arch", "unet",
        "--encoder", "tu-tf_efficientnet_lite0", "--encoder-weights", "none", "--epochs", "1",
        "--train-size", "64", "64", "--test-size", "64", "64", "--batch-size", "2",
        "--train-limit", "6", "--device", "cpu", "--out", str(out),
    ])
    assert status == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "ceph" and metrics["data_source"] == "real" and metrics["unit"] == "px"
    assert metrics["splits"]["test"] == 28 and metrics["splits"]["fit"] + metrics["splits"]["val"] == 6
    score = metrics["test"]["clean"]
    assert score["n_images"] == 28 and score["n_landmarks"] == 19 and list(score["sdr"]) == ["14", "17.5", "21", "28"]
    assert math.isfinite(score["mre"]) and score["mre"] > 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 28 * 19 and {r["image_id"] for r in rows} == set(load_dataset("ceph", real_sets_root).test_ids)


# --------------------------------------------------------------------------- the aasce_csv format


def _aasce(tmp_path: Path, names: list[str], rows: list[list[float]], sizes: list[tuple[int, int]]) -> dict:
    (tmp_path / "img").mkdir()
    for name, size in zip(names, sizes):
        Image.new("L", size, 128).save(tmp_path / "img" / name)
    (tmp_path / "names.csv").write_text("\r\n".join(names) + "\r\n")
    (tmp_path / "marks.csv").write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return {"name": "mini_spine", "images": "img/*.jpg", "landmarks": 2,
            "annotations": {"format": "aasce_csv", "sources": ["marks.csv"], "index": "names.csv"}}


def test_aasce_csv_x_ratios_then_y_ratios(tmp_path):
    spec = _aasce(tmp_path, ["a b.jpg", "c.jpg"], [[0.1, 0.5, 0.2, 0.75], [0.5, 0.5, 0.5, 0.5]],
                  [(40, 100), (20, 10)])
    (tmp_path / "dataset.yaml").write_text(json.dumps(spec))
    lset = load_dataset(tmp_path / "dataset.yaml", None, train=1)
    assert lset.scale.unit == "px" and [s.id for s in lset.samples] == ["a b", "c"]
    np.testing.assert_allclose(lset.by_id()["a b"].landmarks, [[4.0, 20.0], [20.0, 75.0]])
    np.testing.assert_allclose(lset.by_id()["c"].landmarks, [[10.0, 5.0], [10.0, 5.0]])


def test_aasce_csv_bad_input_is_named(tmp_path):
    spec = _aasce(tmp_path, ["a.jpg", "b.jpg", "a.jpg"], [[0.1, 0.2, 0.3, 0.4]] * 2, [(10, 10)] * 3)
    (tmp_path / "dataset.yaml").write_text(json.dumps(spec))
    with pytest.raises(XLMError, match=r"marks.csv: 2 rows, but .*names.csv names 3 images"):
        load_dataset(tmp_path / "dataset.yaml", None)
    (tmp_path / "marks.csv").write_text("0.1,0.2,0.3,0.4\n0.5,0.5,0.5,0.5\n0.1,0.2,0.3,0.4\n")
    lset = load_dataset(tmp_path / "dataset.yaml", None, train=0)
    assert [s.id for s in lset.samples] == ["b"]
    problems = [p.problem for p in lset.problems if p.fatal]
    assert any("lines 1, 3: image 'a' named 2 times" in p for p in problems)
    (tmp_path / "names.csv").write_text("a.jpg\nb.jpg\n")
    (tmp_path / "marks.csv").write_text("0.1,0.2,0.3,0.4\n0.1,0.2,0.3\n")
    lset = load_dataset(tmp_path / "dataset.yaml", None, train=0)
    assert [s.id for s in lset.samples] == ["a"]
    assert any("row 2 (b.jpg): 1.5 landmarks (3 values)" in p.problem for p in lset.problems)


def test_aasce_csv_descriptor_keys(tmp_path):
    spec = _aasce(tmp_path, ["a.jpg"], [[0.1, 0.2, 0.3, 0.4]], [(10, 10)])
    no_index = {**spec, "annotations": {"format": "aasce_csv", "sources": ["marks.csv"]}}
    with pytest.raises(XLMError, match="annotations.index: a aasce_csv table needs index"):
        parse_descriptor(no_index, where="d.yaml", folder=tmp_path)
    with pytest.raises(XLMError, match="aasce_csv files hold ratios"):
        parse_descriptor({**spec, "annotations": {**spec["annotations"], "units": "px"}}, "d.yaml", tmp_path)
    labelme = {**spec, "annotations": {"format": "labelme", "sources": ["r/{id}.json"], "index": "names.csv"}}
    with pytest.raises(XLMError, match=r"only \['aasce_csv'\] tables take an index"):
        parse_descriptor(labelme, where="d.yaml", folder=tmp_path)
    with pytest.raises(XLMError, match="source_folder: expected one folder name"):
        parse_descriptor({**spec, "source_folder": "a/b"}, where="d.yaml", folder=tmp_path)
    with pytest.raises(XLMError, match="name: 'ceph' is reserved"):
        parse_descriptor({**spec, "name": "ceph"}, where="d.yaml", folder=tmp_path)
    assert builtin_descriptor("spine").index == "labels/training/filenames.csv"
    assert builtin_descriptor("ceph").source_folder == CEPH
