"""Bring your own dataset: ``dataset.yaml`` descriptors, several annotators, bad input, and
a LabelMe and a ratio-CSV dataset checked, trained and predicted on through the descriptor alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from xlm_core import XLMError
from xlm_core.cli import main
from xlm_core.config import RunConfig
from xlm_core.datasets import (
    PreprocessCache,
    builtin_descriptor,
    chest,
    dataset_fingerprint,
    hand,
    head,
    load_dataset,
    loader_options,
)
from xlm_core.datasets.descriptor import BUILTIN_DIR
from xlm_core.datasets.synth import write_phantoms

SIZE = (48, 48)  # (W, H) of the phantoms here


def _labelme_points(path: Path) -> np.ndarray:
    doc = json.loads(path.read_text())
    return np.array([s["points"][0] for s in doc["shapes"]], dtype=np.float64)


@pytest.fixture(scope="module")
def two_readers(tmp_path_factory) -> Path:
    """6 head phantoms in LabelMe format read by two annotators; reader b's 002 has two L11, no L18."""
    root = write_phantoms("head", tmp_path_factory.mktemp("lm") / "ceph", n=6, seed=3, size_wh=SIZE,
                          fmt="labelme", annotators=2)
    bad = root / "reader_b" / "002.json"
    doc = json.loads(bad.read_text())
    doc["shapes"][17]["label"] = "l11"
    bad.write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def ratio_csv(tmp_path_factory) -> Path:
    """5 chest phantoms as pictures/*.png + one CSV of ratios, named landmarks, explicit split."""
    native = write_phantoms("chest", tmp_path_factory.mktemp("native") / "chest", n=5, seed=1, size_wh=SIZE)
    root = tmp_path_factory.mktemp("csv") / "lungs"
    (root / "pictures").mkdir(parents=True)
    rows = ["image_id,landmark,x,y"]
    names = ["r_apex", "r_cp", "r_cardio", "l_apex", "l_cp", "l_cardio"]
    for label in sorted((native / "labels").glob("*.txt")):
        shutil.copy(native / "pngs" / f"{label.stem}.png", root / "pictures" / f"{label.stem}.png")
        ratios = np.array([ln.split() for ln in label.read_text().splitlines()[1:]], dtype=float)
        rows += [f"{label.stem},{names[k]},{x},{y}" for k, (x, y) in enumerate(ratios)]
    (root / "points.csv").write_text("\n".join(rows) + "\n")
    (root / "dataset.yaml").write_text(
        "name: lungs\n"
        "images: pictures/*.png\n"
        "annotations: {format: landmark_csv, sources: [points.csv], units: ratio}\n"
        f"landmarks: {json.dumps(names)}\n"
        "spacing_mm: null\n"
        "split: {test: [CHNCXR_0002_0, CHNCXR_0005_0]}\n"
    )
    return root


# --------------------------------------------------------------------------- built-ins


def test_builtin_descriptors_keep_the_paper_rules():
    h, d, c = (builtin_descriptor(n) for n in ("head", "hand", "chest"))
    assert list(h.landmark_names) == head.LANDMARK_NAMES and list(h.sources) == ["senior", "junior"]
    assert h.require_all and h.spacing.mm_per_px == 0.1 and h.split_paper == (150, 400)
    assert d.spacing.pair == (1, 5) and d.spacing.named_pairs["zhu"] == hand.WRIST_PAIR_ZHU
    assert d.split_paper == (609, 909) and d.test_size == hand.TEST_SIZE_HW
    assert c.named_exclusions["zhu"] == chest.ZHU_EXCLUDED_IDS and c.units == "ratio"
    assert sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")) == ["ceph", "chest", "hand", "head", "spine"]
    assert loader_options("head") == ["annotator", "strict", "train", "verify_images"]
    assert loader_options("hand") == ["image_format", "strict", "train", "verify_images", "wrist_pair"]
    assert loader_options("chest") == ["exclusion", "strict", "train", "verify_images"]


def test_user_copy_of_head_descriptor_loads_like_the_builtin(tmp_path):
    root = write_phantoms("head", tmp_path / "head", n=5, seed=2, size_wh=(40, 50))
    text = (BUILTIN_DIR / "head.yaml").read_text().replace("name: head", "name: my_head")
    (tmp_path / "copy.yaml").write_text(text + "root: head\n")
    builtin, mine = load_dataset("head", root), load_dataset(tmp_path / "copy.yaml", "")
    assert mine.name == "my_head" and mine.root.resolve() == root.resolve()
    assert [s.id for s in mine.samples] == [s.id for s in builtin.samples]
    for a, b in zip(mine.samples, builtin.samples):
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert (mine.train_ids, mine.test_ids, mine.scale) == (builtin.train_ids, builtin.test_ids, builtin.scale)
    assert mine.synthetic and mine.annotator_disagreement["n_images"] == 5
    assert loader_options(str(tmp_path / "copy.yaml")) == ["annotator", "strict", "train", "verify_images"]


# --------------------------------------------------------------------------- several annotators


def test_two_annotators_mean_and_a_duplicated_label_left_out(two_readers):
    lset = load_dataset(two_readers / "dataset.yaml", None)
    assert lset.name == "head_labelme" and lset.synthetic and len(lset.samples) == 6
    a = {i: _labelme_points(two_readers / "reader_a" / f"{i}.json") for i in ("001", "002")}
    b = _labelme_points(two_readers / "reader_b" / "001.json")
    np.testing.assert_allclose(lset.by_id()["001"].landmarks, (a["001"] + b) / 2)
    np.testing.assert_allclose(lset.by_id()["002"].landmarks, a["002"])  # reader b left out, not guessed
    bad = [p for p in lset.problems if p.file == "reader_b/002.json"]
    assert {("more than once: [11]" in p.problem, "missing [18]" in p.problem) for p in bad} == {
        (True, False), (False, True)}
    assert all("left out of the mean" in p.problem and not p.fatal for p in bad)
    assert len(lset.problems) == 2
    info = lset.annotator_disagreement
    assert info["n_images"] == 5 and len(info["per_landmark_mre"]) == 19 and info["unit"] == "mm"
    assert 0 < info["mre_px"] < 1.5  # reader b = reader a + N(0, 0.4 % of 48 px) offsets
    assert info["mre"] == pytest.approx(info["mre_px"] * lset.scale.mm_per_px)
    senior_like = load_dataset(two_readers / "dataset.yaml", None, annotator="reader_a/{id}.json")
    np.testing.assert_allclose(senior_like.by_id()["001"].landmarks, a["001"])
    assert senior_like.annotator_disagreement is None


def test_data_check_reports_disagreement_and_the_bad_file(two_readers, capsys):
    assert main(["data", "check", str(two_readers / "dataset.yaml")]) == 0  # nothing unusable
    text = capsys.readouterr().out
    assert "reader_b/002.json" in text and "more than once: [11]" in text
    assert "inter-annotator MRE" in text and "landmark 19:" in text
    assert main(["data", "check", str(two_readers), "--json"]) == 0  # the folder holding dataset.yaml
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 6 and report["annotators"]["n_images"] == 5


def test_require_all_makes_the_image_unusable(two_readers, tmp_path):
    root = tmp_path / "strict"
    shutil.copytree(two_readers, root)
    text = (root / "dataset.yaml").read_text().replace("  format: labelme\n", "  format: labelme\n  require_all: true\n")
    (root / "dataset.yaml").write_text(text)
    (root / "reader_a" / "004.json").unlink()
    lset = load_dataset(root / "dataset.yaml", "")
    assert sorted(set(lset.by_id())) == ["001", "003", "005", "006"]
    fatal = {p.file: p.problem for p in lset.fatal_problems}
    assert "images/004.png" in fatal and "no reader_a/{id}.json annotation" in fatal["images/004.png"]
    with pytest.raises(XLMError, match="reader_b/002.json"):
        load_dataset(root / "dataset.yaml", "", strict=True)


# --------------------------------------------------------------------------- ratio CSV


def test_ratio_csv_descriptor_with_names_and_explicit_split(ratio_csv, tmp_path):
    lset = load_dataset(ratio_csv / "dataset.yaml", None)
    assert lset.name == "lungs" and lset.landmark_names[0] == "r_apex" and lset.scale.unit == "px"
    assert lset.test_ids == ["CHNCXR_0002_0", "CHNCXR_0005_0"] and len(lset.train_ids) == 3
    assert lset.thresholds == (3.0, 6.0, 9.0) and lset.problems == [] and not lset.synthetic
    rows = [r.split(",") for r in (ratio_csv / "points.csv").read_text().splitlines()[1:]]
    first = np.array([[float(r[2]) * SIZE[0], float(r[3]) * SIZE[1]] for r in rows[:6]])
    np.testing.assert_allclose(lset.samples[0].landmarks, first)
    # the fingerprint follows the descriptor, not where the folder lies
    cache = PreprocessCache(tmp_path / "cache")
    moved = tmp_path / "moved"
    shutil.copytree(ratio_csv, moved)
    assert dataset_fingerprint(load_dataset(moved, None), cache) == dataset_fingerprint(lset, cache)
    (moved / "dataset.yaml").write_text((moved / "dataset.yaml").read_text().replace("null", "0.5"))
    assert dataset_fingerprint(load_dataset(moved, None), cache) != dataset_fingerprint(lset, cache)


def test_runconfig_dataset_may_be_a_descriptor_with_empty_root(ratio_csv, tmp_path):
    cfg = RunConfig.from_dict({"dataset": str(ratio_csv / "dataset.yaml"), "root": "", "out": str(tmp_path),
                               "extra": {"train": 4}})
    a = load_dataset(cfg.dataset, cfg.root or None, **cfg.extra)
    b = load_dataset(cfg.dataset, cfg.root, **cfg.extra)
    assert a.train_ids == b.train_ids and len(a.train_ids) == 4  # the option overrides the lists
    with pytest.raises(XLMError, match="no root folder given"):
        load_dataset("head", "")


# --------------------------------------------------------------------------- bad input


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dataset.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "edit, match",
    [
        (("name: x\nimages: images/*.png\nannotations: {format: labelme, sources: ['reader_a/{id}.json']}\n"
         "landmarks: 19\nspacing: 0.1\n"), r"dataset.yaml: spacing: unknown key; allowed: name, images, "),
        (("images: images/*.png\nannotations: {format: labelme, sources: ['reader_a/{id}.json'], units: mm}\n"
         "landmarks: 19\n"), r"annotations.units: input should be 'px' or 'ratio', got str 'mm'"),
        ("images: images/*.png\nannotations: {format: pts, sources: ['reader_a/{id}.json']}\nlandmarks: 19\n",
         r"annotations.format: input should be 'labelme', .*, got str 'pts'"),
        ("images: scans/*.tif\nannotations: {format: labelme, sources: ['reader_a/{id}.json']}\nlandmarks: 19\n",
         r"images: expected folder .*scans does not exist"),
        ("images: images/*.tif\nannotations: {format: labelme, sources: ['reader_a/{id}.json']}\nlandmarks: 19\n",
         r"images: 'images/\*.tif' match no image file"),
        ("images: images/*.png\nannotations: {format: labelme, sources: ['reader_a/{id}.json']}\nlandmarks: 5\n",
         r"landmarks: 5 declared, but no annotation holds 5: .*reader_a/001.json holds 19"),
        ("images: images/*.png\nannotations: {format: labelme, sources: ['reader_a/x.json']}\nlandmarks: 19\n",
         r"annotations.sources\[0\]: 'reader_a/x.json': a labelme source needs \{id\}"),
        ("images: images/*.png\nannotations: {format: labelme, sources: ['notes/{id}.json']}\nlandmarks: 19\n",
         r"annotations.sources: expected folder .*notes does not exist"),
        (("name: hand\nimages: images/*.png\nannotations: {format: labelme, sources: ['reader_a/{id}.json']}\n"
         "landmarks: 19\n"), r"name: 'hand' is reserved"),
        (("images: images/*.png\nannotations: {format: labelme, sources: ['reader_a/{id}.json']}\nlandmarks: 19\n"
         "spacing_mm: {pair: [2, 26], width_mm: 50}\n"), r"spacing_mm.pair: .* in 1..19, got \[2, 26\]"),
        (("images: images/*.png\nannotations: {format: labelme, sources: ['reader_a/{id}.json']}\nlandmarks: 19\n"
         "split: {train: 1.5}\n"), r"split.train: a fraction must lie in \(0, 1\), got 1.5"),
    ],
)
def test_bad_descriptor_raises_naming_the_key(two_readers, tmp_path, edit, match):
    root = tmp_path / "d"
    shutil.copytree(two_readers, root)
    path = _write(root, edit)
    with pytest.raises(XLMError, match=match):
        load_dataset(path, None)


def test_every_mistake_of_a_descriptor_is_reported_at_once_with_its_path(tmp_path):
    path = _write(tmp_path / "mine", (
        "images: ../elsewhere/*.png\n"                                   # outside the root
        "annotations:\n"
        "  format: labelme\n"
        "  sources: ['reader_a/{id}.json', reader_b/scan.json]\n"        # no {id}
        "  require_all: yes please\n"                                    # not true or false
        "landmarks: 19\n"
        "spacing_mm: {pair: [2, 26]}\n"                                  # 26 > 19 landmarks
        "split: {train: 0.8, test: [a, b]}\n"                            # a fraction and a list
        "train_size: [512]\n"                                            # not [H, W]
        "thresholds: [2, 4]\n"
        "sizes: [1, 2]\n"))                                              # unknown key
    with pytest.raises(XLMError) as info:
        load_dataset(path, None)
    lines = str(info.value).splitlines()
    assert lines[0] == f"dataset descriptor {path}: 7 problems"
    problems = [line.removeprefix(f"dataset descriptor {path}: ") for line in lines[1:]]
    assert [p.split(": ", 1)[0] for p in problems] == [
        "images", "annotations.sources[1]", "annotations.require_all", "spacing_mm.pair", "split.test",
        "train_size[1]", "sizes"]
    assert "'../elsewhere/*.png' must stay inside the dataset root" in problems[0]
    assert "'reader_b/scan.json': a labelme source needs {id}" in problems[1]
    assert "got str 'yes please'" in problems[2]
    assert "in 1..19, got [2, 26]" in problems[3]
    assert "an explicit test list goes with train: [ids] or alone" in problems[4]
    assert "unknown key; allowed: name, images, annotations" in problems[6]


def test_bad_options_and_paths(two_readers, tmp_path, capsys):
    with pytest.raises(XLMError, match="unknown option"):
        load_dataset(two_readers / "dataset.yaml", None, exclusion="zhu")
    with pytest.raises(XLMError, match="annotator must be one of"):
        load_dataset(two_readers / "dataset.yaml", None, annotator="reader_c")
    with pytest.raises(XLMError, match="descriptor not found"):
        load_dataset(tmp_path / "nothing.yaml", None)
    assert main(["data", "check", str(tmp_path / "nothing.yaml")]) == 1
    assert "descriptor not found" in capsys.readouterr().err
    assert main(["data", "check", "knee", str(tmp_path)]) == 1
    assert "unknown dataset" in capsys.readouterr().err


def test_synth_cli_writes_two_readers_and_a_descriptor(tmp_path, capsys):
    out = tmp_path / "hand"
    assert main(["data", "synth", "hand", str(out), "--n", "2", "--size", "46x64", "--format", "labelme",
                 "--annotators", "2"]) == 0
    assert "dataset.yaml" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["SYNTHETIC.json", "dataset.yaml", "images", "reader_a",
                                                     "reader_b"]
    lset = load_dataset(out / "dataset.yaml", None)
    assert lset.scale.wrist_pair == (1, 5) and lset.thresholds == (2.0, 4.0, 10.0) and lset.problems == []
    with pytest.raises(XLMError, match="annotators"):
        write_phantoms("hand", tmp_path / "x", n=1, annotators=2)  # native layout: one reader


# --------------------------------------------------------------------------- train and predict


def _train_and_predict(dataset_yaml: Path, out: Path, images: list[Path]) -> tuple[dict, dict]:
    args = ["train", "--dataset", str(dataset_yaml), "--root", "", "--out", str(out / "run"), "--arch", "unet",
            "--encoder", "resnet18", "--epochs", "1", "--batch-size", "2", "--train-size", "32", "32",
            "--test-size", "32", "32", "--device", "cpu"]
    assert main(args) == 0
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    assert main(["predict", str(out / "run" / "checkpoint.pt"), *map(str, images), "--out", str(out / "pred"),
                 "--device", "cpu"]) == 0
    predicted = json.loads((out / "pred" / "landmarks.json").read_text())
    return metrics, predicted


@pytest.mark.slow
def test_labelme_two_readers_train_and_predict(two_readers, tmp_path):
    metrics, predicted = _train_and_predict(two_readers / "dataset.yaml", tmp_path,
                                            sorted((two_readers / "images").glob("*.png"))[:2])
    assert metrics["dataset"] == "head_labelme" and metrics["unit"] == "mm"
    assert metrics["test"]["clean"]["n_images"] == 1 and metrics["test"]["zhu"] is None  # 6 x 0.8 -> 5 | 1
    assert len(predicted["images"]) == 2 and len(predicted["images"][0]["landmarks"]) == 19


@pytest.mark.slow
def test_ratio_csv_train_and_predict(ratio_csv, tmp_path):
    metrics, predicted = _train_and_predict(ratio_csv / "dataset.yaml", tmp_path,
                                            [ratio_csv / "pictures" / "CHNCXR_0005_0.png"])
    assert metrics["dataset"] == "lungs" and metrics["unit"] == "px"
    assert metrics["test"]["clean"]["n_images"] == 2
    assert [lm["name"] for lm in predicted["images"][0]["landmarks"]][:2] == ["r_apex", "r_cp"]
