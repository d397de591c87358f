"""Loaders (real samples and tiny phantoms), splits, the generic formats and the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xlm_core import XLMError
from xlm_core.datasets import (
    DATASET_NAMES,
    PreprocessCache,
    carve_validation,
    dataset_fingerprint,
    kfold_split,
    load_dataset,
)
from xlm_core.datasets import cache as cache_module
from xlm_core.datasets.splits import ordered_split, resolve_train_count
from xlm_core.datasets.synth import write_phantoms


def _txt_points(path):
    lines = path.read_text().splitlines()[:19]
    return np.array([[float(v) for v in ln.split(",")] for ln in lines])


# --------------------------------------------------------------------------- real samples


def test_head_real_sample_is_mean_of_annotators(head_root):
    lset = load_dataset("head", head_root)
    assert [s.id for s in lset.samples] == ["001"]
    sample = lset.samples[0]
    assert sample.size_wh == (1935, 2400)  # (W, H), read from the header
    ann = head_root / "AnnotationsByMD"
    senior = _txt_points(ann / "400_senior" / "001.txt")
    junior = _txt_points(ann / "400_junior" / "001.txt")
    assert sample.landmarks.shape == (19, 2) and sample.landmarks.dtype == np.float64
    np.testing.assert_array_equal(sample.landmarks, (senior + junior) / 2)
    only_senior = load_dataset("head", head_root, annotator="senior").samples[0].landmarks
    np.testing.assert_array_equal(only_senior, senior)
    assert lset.scale.unit == "mm" and lset.scale.mm_per_px == 0.1
    assert lset.thresholds == (2.0, 2.5, 3.0, 4.0)
    assert lset.train_size == (512, 512) and lset.test_size == (512, 416)
    assert not lset.synthetic and lset.problems == []


def test_hand_real_sample_skips_and_reports_unannotated_image(hand_root):
    lset = load_dataset("hand", hand_root)
    assert len(lset.samples) == 9
    assert all(s.landmarks.shape == (37, 2) for s in lset.samples)
    assert "3128" not in [s.id for s in lset.samples]
    unannotated = [p for p in lset.problems if p.file == "jpg/3128.jpg"]
    assert len(unannotated) == 1 and not unannotated[0].fatal
    assert any("5148" in p.problem and "(0, 771)" in p.problem for p in lset.problems)
    assert not lset.fatal_problems
    assert lset.scale.wrist_pair == (1, 5) and lset.scale.unit == "mm"
    assert lset.thresholds == (2.0, 4.0, 10.0) and lset.test_size == (512, 368)
    # 9 of Payer's 909: the paper's 609/909 proportion, first ids train
    assert len(lset.train_ids) == 6 and lset.test_ids == ["7088", "7232", "7236"]
    row = next(r for r in (hand_root / "all.csv").read_text().splitlines() if r.startswith("7088,"))
    expected = np.array([float(v) for v in row.split(",")[1:]]).reshape(37, 2)
    np.testing.assert_array_equal(lset.by_id()["7088"].landmarks, expected)
    assert lset.by_id()["7088"].image.suffix == ".jpg"  # jpg preferred over mha


def test_hand_mha_format_and_wrist_pair_option(hand_root):
    lset = load_dataset("hand", hand_root, image_format="mha", wrist_pair="zhu")
    assert {s.image.suffix for s in lset.samples} == {".mha"} and len(lset.samples) == 9
    assert lset.scale.wrist_pair == (0, 4)
    assert not any("3128" in p.file for p in lset.problems)  # no mha for 3128: nothing to report
    with pytest.raises(XLMError, match="wrist_pair"):
        load_dataset("hand", hand_root, wrist_pair=(3, 3))


def test_chest_real_sample_converts_ratios_with_image_size(chest_root):
    lset = load_dataset("chest", chest_root)
    assert len(lset.samples) == 11 and lset.scale.unit == "px"
    sample = lset.by_id()["CHNCXR_0002_0"]
    assert sample.size_wh == (750, 738)
    lines = (chest_root / "labels" / "CHNCXR_0002_0.txt").read_text().split()
    ratios = np.array([float(v) for v in lines[1:]]).reshape(6, 2)
    np.testing.assert_allclose(sample.landmarks, ratios * [750, 738])
    orphans = [p for p in lset.problems if p.file == "labels"]
    assert len(orphans) == 1 and orphans[0].problem.startswith("268 label files have no image")
    assert not lset.fatal_problems and lset.thresholds == (3.0, 6.0, 9.0)


def test_chest_zhu_exclusion_drops_nine_ids_from_a_full_label_set(chest_root):
    # labels only (no images needed to test the id bookkeeping): 279 orphans, 9 excluded
    lset = load_dataset("chest", chest_root, exclusion="zhu")
    summary = next(p for p in lset.problems if p.file == "labels")
    assert summary.problem.startswith("259 label files")  # 268 - the 9 excluded
    assert lset.options["exclusion"] == "zhu"


def test_wrong_root_names_the_expected_path(tmp_path):
    with pytest.raises(XLMError, match="does not exist"):
        load_dataset("head", tmp_path / "nowhere")
    with pytest.raises(XLMError, match=str(tmp_path / "RawImage")):
        load_dataset("head", tmp_path)
    with pytest.raises(XLMError, match="all.csv"):
        load_dataset("hand", tmp_path)
    with pytest.raises(XLMError, match="pngs"):
        load_dataset("chest", tmp_path)
    with pytest.raises(XLMError, match="unknown dataset"):
        load_dataset("knee", tmp_path)


# --------------------------------------------------------------------------- phantom roots


@pytest.fixture(scope="module")
def head_phantoms(tmp_path_factory):
    return write_phantoms("head", tmp_path_factory.mktemp("head") / "root", n=8, seed=1, size_wh=(64, 80))


def test_phantom_root_loads_as_synthetic_with_scaled_split(head_phantoms):
    lset = load_dataset("head", head_phantoms)
    assert lset.synthetic and lset.data_source == "synthetic"
    assert len(lset.samples) == 8 and lset.train_ids == ["001", "002", "003"]  # round(8 * 150 / 400)
    assert lset.scale.mm_per_px == pytest.approx(0.1 * 1935 / 64, rel=1e-5)
    custom = load_dataset("head", head_phantoms, train=0.5)
    assert len(custom.train_ids) == 4 and len(custom.test_ids) == 4
    assert load_dataset("head", head_phantoms, train=6).test_ids == ["007", "008"]
    with pytest.raises(XLMError, match="unknown option"):
        load_dataset("head", head_phantoms, exclusion="zhu")


def test_strict_raises_listing_fatal_problems(head_phantoms, tmp_path):
    import shutil

    root = tmp_path / "head"
    shutil.copytree(head_phantoms, root)
    (root / "RawImage" / "TrainingData" / "002.bmp").write_bytes(b"")
    lset = load_dataset("head", root)
    assert "002" not in lset.by_id() and len(lset.fatal_problems) == 1
    with pytest.raises(XLMError, match="002.bmp"):
        load_dataset("head", root, strict=True)


def test_fingerprint_follows_content_and_options(head_phantoms, tmp_path):
    cache = PreprocessCache(tmp_path / "cache")
    mean = dataset_fingerprint(load_dataset("head", head_phantoms), cache)
    assert mean == dataset_fingerprint(load_dataset("head", head_phantoms), cache)
    senior = dataset_fingerprint(load_dataset("head", head_phantoms, annotator="senior"), cache)
    assert senior != mean


def test_generic_labelme_and_landmark_csv_match_native(tmp_path):
    native = load_dataset("chest", write_phantoms("chest", tmp_path / "n", n=3, seed=4, size_wh=(48, 48)))
    labelme = load_dataset("labelme", write_phantoms("chest", tmp_path / "l", n=3, seed=4,
                                                     size_wh=(48, 48), fmt="labelme"))
    assert labelme.n_landmarks == 6 and len(labelme.samples) == 3 and labelme.synthetic
    for a, b in zip(native.samples, labelme.samples):
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.01)
    # the same points as image_id,landmark,x,y rows beside the images
    root = tmp_path / "l" / "images"
    rows = ["image_id,landmark,x,y"]
    for s in labelme.samples:
        rows += [f"{s.id},{k + 1},{x},{y}" for k, (x, y) in enumerate(s.landmarks)]
    (root / "landmarks.csv").write_text("\n".join(rows) + "\n")
    for js in root.glob("*.json"):
        js.unlink()
    table = load_dataset("landmark_csv", root, spacing=0.5)
    assert [s.id for s in table.samples] == [s.id for s in labelme.samples]
    np.testing.assert_array_equal(table.samples[1].landmarks, labelme.samples[1].landmarks)
    assert table.scale.unit == "mm" and table.thresholds == (2.0, 2.5, 3.0, 4.0)


def test_labelme_label_forms_and_dataset_yaml(tmp_path):
    from PIL import Image

    from xlm_core.datasets.formats import label_index

    assert [label_index(t, None) for t in ("l7", "L7", "7", "landmark 07", "tip")] == [6, 6, 6, 6, None]
    assert label_index("Tip", ["base", "tip"]) == 1
    Image.new("L", (20, 10)).save(tmp_path / "a.png")
    shapes = [{"label": lab, "points": [[x, 5]], "shape_type": "point"}
              for lab, x in (("2", 8.0), ("l1", 3.0))]
    (tmp_path / "a.json").write_text(json.dumps({"shapes": shapes, "imagePath": "a.png"}))
    (tmp_path / "data.yaml").write_text("format: labelme\nroot: .\nspacing: 0.2\n")
    lset = load_dataset(str(tmp_path / "data.yaml"), None)
    np.testing.assert_array_equal(lset.samples[0].landmarks, [[3.0, 5.0], [8.0, 5.0]])
    assert lset.scale.mm_per_px == 0.2


# --------------------------------------------------------------------------- splits


def test_resolve_train_count_rules():
    assert resolve_train_count(400, None, 150, 400) == 150
    assert resolve_train_count(909, None, 609, 909) == 609
    assert resolve_train_count(20, None, 150, 400) == 8  # 7.5 -> 8 (banker's rounding)
    assert resolve_train_count(2, None, 150, 400) == 1  # both parts keep an image
    assert resolve_train_count(10, 0.3) == 3 and resolve_train_count(10, 4) == 4
    assert resolve_train_count(10, None) == 8  # no paper split: 80 %
    with pytest.raises(XLMError):
        resolve_train_count(10, 1.5)
    with pytest.raises(XLMError):
        resolve_train_count(10, 11)
    assert ordered_split(["10", "9", "1"], 2) == (["1", "9"], ["10"])  # natural order


def test_kfold_is_deterministic_disjoint_and_covering():
    ids = [f"{i:03d}" for i in range(23)]
    folds = [kfold_split(ids, 5, k, seed=3) for k in range(5)]
    assert folds == [kfold_split(list(reversed(ids)), 5, k, seed=3) for k in range(5)]
    heldout = [set(h) for _, h in folds]
    assert set().union(*heldout) == set(ids) and sum(map(len, heldout)) == len(ids)
    for train, held in folds:
        assert not set(train) & set(held) and set(train) | set(held) == set(ids)
        assert len(held) in (4, 5)
    assert kfold_split(ids, 5, 0, seed=4) != folds[0]
    with pytest.raises(XLMError):
        kfold_split(ids, 5, 5)
    with pytest.raises(XLMError):
        kfold_split(ids[:3], 5, 0)


def test_carve_validation_is_deterministic_and_non_empty():
    ids = [str(i) for i in range(10)]
    fit, val = carve_validation(ids, 0.2, seed=1)
    assert (fit, val) == carve_validation(ids[::-1], 0.2, seed=1)
    assert len(val) == 2 and not set(fit) & set(val) and set(fit) | set(val) == set(ids)
    assert len(carve_validation(["a", "b"], 0.05)[1]) == 1
    assert carve_validation(["a"], 0.5) == (["a"], [])


def test_dataset_names():
    assert DATASET_NAMES == ("head", "hand", "chest")


# --------------------------------------------------------------------------- cache


def test_cache_decodes_once_per_content_and_size(tmp_path, monkeypatch, head_phantoms):
    calls = []
    real_read = cache_module.read_image
    monkeypatch.setattr(cache_module, "read_image", lambda p: calls.append(p) or real_read(p))
    cache = PreprocessCache(tmp_path / "cache")
    image = head_phantoms / "RawImage" / "TrainingData" / "001.bmp"
    first = cache.load(image, (40, 32))
    assert first.shape == (40, 32) and first.dtype == np.float32 and len(calls) == 1
    np.testing.assert_array_equal(PreprocessCache(tmp_path / "cache").load(image, (40, 32)), first)
    assert len(calls) == 1  # a new cache object over the same folder: read from disk
    copy = tmp_path / "renamed.bmp"
    copy.write_bytes(image.read_bytes())
    cache.load(copy, (40, 32))
    assert len(calls) == 1  # keyed by content, not by path
    cache.load(image, (20, 16))
    assert len(calls) == 2  # a new size is a new entry
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2
    other = head_phantoms / "RawImage" / "TrainingData" / "002.bmp"
    assert cache.fingerprint([image, other]) == PreprocessCache(tmp_path / "c2").fingerprint([image, other])
    assert cache.fingerprint([image]) != cache.fingerprint([other])


def test_cache_keys_are_the_sha256_of_the_file_bytes(tmp_path):
    image = tmp_path / "x.bmp"
    image.write_bytes(b"abc")  # the FIPS 180-2 example: entries written before keep their keys
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    cache = PreprocessCache(tmp_path / "cache")
    assert cache.content_hash(image) == digest
    assert cache.entry_path(image, (40, 32)) == (tmp_path / "cache" / "images" / "ba"
                                                 / f"{digest}_40x32_pilbilinear1.npy")
    with pytest.raises(XLMError, match="cannot read image file"):
        cache.content_hash(tmp_path)  # a folder: stat works, reading does not


def test_cache_writes_nothing_on_decode_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    cache = PreprocessCache(tmp_path / "cache")
    with pytest.raises(XLMError, match="bad.png"):
        cache.load(bad, (8, 8))
    assert not (tmp_path / "cache").exists() or not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_cache_default_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("XLM_CACHE", str(tmp_path / "c"))
    assert PreprocessCache().cache_dir == tmp_path / "c"


def test_a_validation_fraction_of_zero_holds_nothing_out():
    ids = [f"{i:03d}" for i in range(10)]
    assert carve_validation(ids, 0.0) == (ids, [])
