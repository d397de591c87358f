"""``xlm data check`` finds every problem, each in its file, on small corrupted copies."""

from __future__ import annotations

import json
import shutil

import pytest

from xlm_core.cli import main
from xlm_core.datasets import check_dataset, load_dataset
from xlm_core.datasets.synth import write_phantoms


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    base = tmp_path_factory.mktemp("pristine")
    sizes = {"head": (40, 50), "hand": (46, 64), "chest": (40, 40)}
    return {a: write_phantoms(a, base / a, n=9, seed=2, size_wh=sizes[a]) for a in sizes}


def _copy(pristine, anatomy, tmp_path):
    root = tmp_path / anatomy
    shutil.copytree(pristine[anatomy], root)
    return root


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _problems(report):
    return {(p.file, p.problem) for p in report.problems}


def _has(report, file, *words):
    return any(p.file == file and all(w in p.problem for w in words) for p in report.problems)


def test_head_every_problem_listed(pristine, tmp_path):
    root = _copy(pristine, "head", tmp_path)
    images = root / "RawImage"
    senior = root / "AnnotationsByMD" / "400_senior"
    junior = root / "AnnotationsByMD" / "400_junior"
    train = sorted((images / "TrainingData").iterdir()) + sorted((images / "Test1Data").iterdir())
    _truncate(train[0])  # 001 truncated bmp
    train[1].write_bytes(b"")  # 002 zero bytes
    lines = (senior / "003.txt").read_text().splitlines()
    (senior / "003.txt").write_text("\n".join(lines[:18] + lines[19:]) + "\n")  # 18 of 19 points
    lines = (junior / "004.txt").read_text().splitlines()
    (junior / "004.txt").write_text("\n".join(["nan,12"] + lines[1:]) + "\n")
    lines = (senior / "005.txt").read_text().splitlines()
    (senior / "005.txt").write_text("\n".join(lines[:4] + ["abc,def"] + lines[5:]) + "\n")
    lines = (senior / "006.txt").read_text().splitlines()
    (junior / "006.txt").write_text("\n".join(["900,10"] * 19 + lines[19:]) + "\n")  # mean outside 40x50
    shutil.copy(images / "Test1Data" / "007.bmp", images / "TrainingData" / "007.bmp")  # 007 twice
    (images / "Test1Data" / "010.bmp").write_bytes((images / "Test1Data" / "008.bmp").read_bytes())

    report = check_dataset("head", root)
    assert _has(report, "RawImage/TrainingData/001.bmp", "unreadable", "truncated")
    assert _has(report, "RawImage/TrainingData/002.bmp", "empty")
    assert _has(report, "AnnotationsByMD/400_senior/003.txt", "18 landmarks", "expected 19")
    assert _has(report, "AnnotationsByMD/400_junior/004.txt", "NaN", "landmark 1 x")
    assert _has(report, "AnnotationsByMD/400_senior/005.txt", "non-numeric", "'abc'")
    assert _has(report, "RawImage/Test1Data/006.bmp", "outside the 40x50 image")
    dup = [p for p in report.problems if "duplicate id '007'" in p.problem]
    assert len(dup) == 2 and all(p.fatal for p in dup)
    assert _has(report, "RawImage/Test1Data/010.bmp", "without annotation")
    assert sum(p.fatal for p in report.problems) == 8  # 6 broken images + both copies of 007
    assert report.images == 9 - 7  # 008 and 009 survive
    # one decision: the loader (headers, plus a decode of files cut short) drops the same images
    dropped = ["001", "002", "003", "004", "005", "006", "007"]
    assert [i for i, _ in report.dropped] == dropped
    loaded = load_dataset("head", root)
    assert sorted(loaded.by_id()) == ["008", "009"]
    assert [i for i, _ in loaded.dropped] == dropped
    reasons = dict(loaded.dropped)
    assert "truncated" in reasons["001"] and "NaN" in reasons["004"] and "duplicate" in reasons["007"]
    assert report.images_found == 10  # 007 twice, 010 without annotation
    text = report.as_text()
    assert "10 image files found, 2 usable annotated images, 7 unusable" in text
    assert "unusable images (skipped by every loader): 001, 002, 003, 004, 005, 006, 007" in text


def test_hand_every_problem_listed(pristine, tmp_path):
    root = _copy(pristine, "hand", tmp_path)
    jpg = root / "jpg"
    _truncate(jpg / "1001.jpg")
    (jpg / "1002.jpg").write_bytes(b"")
    rows = (root / "all.csv").read_text().splitlines()
    fields = [r.split(",") for r in rows]
    fields[2] = fields[2][:-2]  # 1003: 36 landmarks
    fields[3][5] = "NaN"  # 1004
    fields[4][8] = "x7"  # 1005
    fields[5][1] = "-40"  # 1006 outside
    fields.append(list(fields[6]))  # 1007 twice
    fields.append(["4242"] + fields[0][1:])  # a row without image
    fields[7][1], fields[7][2] = "0", "20"  # 1008 on the border: reported, still usable
    (root / "all.csv").write_text("\n".join(",".join(f) for f in fields) + "\n")
    shutil.copy(jpg / "1009.jpg", jpg / "5000.jpg")  # an image without row

    report = check_dataset("hand", root)
    assert _has(report, "jpg/1001.jpg", "truncated")
    assert _has(report, "jpg/1002.jpg", "empty")
    assert _has(report, "all.csv", "row 3 (id 1003)", "36 landmarks")
    assert _has(report, "all.csv", "id 1004", "NaN")
    assert _has(report, "all.csv", "id 1005", "non-numeric", "'x7'")
    assert _has(report, "all.csv", "id 1006", "outside")
    assert _has(report, "all.csv", "row 7", "duplicate id '1007'")
    assert _has(report, "all.csv", "row 10", "duplicate id '1007'")
    assert _has(report, "all.csv", "1 rows of all.csv have no image", "4242")
    assert _has(report, "jpg/5000.jpg", "no row in all.csv")
    border = [p for p in report.problems if "id 1008" in p.problem]
    assert len(border) == 1 and "border" in border[0].problem and not border[0].fatal
    assert report.images == 2 and not report.ok  # 1008 and 1009
    assert [i for i, _ in report.dropped] == ["1001", "1002", "1003", "1004", "1005", "1006", "1007"]
    assert [i for i, _ in load_dataset("hand", root).dropped] == [i for i, _ in report.dropped]


def test_chest_every_problem_listed(pristine, tmp_path):
    root = _copy(pristine, "chest", tmp_path)
    pngs, labels = root / "pngs", root / "labels"
    _truncate(pngs / "CHNCXR_0001_0.png")
    (pngs / "CHNCXR_0002_0.png").write_bytes(b"")
    lines = (labels / "CHNCXR_0003_0.txt").read_text().splitlines()
    (labels / "CHNCXR_0003_0.txt").write_text("\n".join(lines[:-1]) + "\n")  # 5 of 6 points
    (labels / "CHNCXR_0004_0.txt").write_text("\n".join([lines[0], "nan 0.5"] + lines[2:]) + "\n")
    (labels / "CHNCXR_0005_0.txt").write_text("\n".join([lines[0], "left 0.5"] + lines[2:]) + "\n")
    (labels / "CHNCXR_0006_0.txt").write_text("\n".join([lines[0], "1.5 0.5"] + lines[2:]) + "\n")
    shutil.copy(pngs / "CHNCXR_0007_0.png", pngs / "CHNCXR_0007_0.jpg")  # same id twice
    (labels / "CHNCXR_0099_0.txt").write_text("\n".join(lines) + "\n")  # label without image

    report = check_dataset("chest", root)
    assert _has(report, "pngs/CHNCXR_0001_0.png", "truncated")
    assert _has(report, "pngs/CHNCXR_0002_0.png", "empty")
    assert _has(report, "labels/CHNCXR_0003_0.txt", "5 coordinate lines")
    assert _has(report, "labels/CHNCXR_0004_0.txt", "NaN")
    assert _has(report, "labels/CHNCXR_0005_0.txt", "non-numeric", "'left'")
    assert _has(report, "labels/CHNCXR_0006_0.txt", "outside the 40x40 image")
    assert _has(report, "pngs/CHNCXR_0007_0.png", "duplicate id")
    assert _has(report, "labels", "1 label files have no image", "CHNCXR_0099_0")
    assert report.images == 2 and sum(p.fatal for p in report.problems) == 8
    # 8 fatal problems, 7 unusable images (both copies of 0007 are one image id)
    assert [i for i, _ in report.dropped] == [f"CHNCXR_000{k}_0" for k in range(1, 8)]
    assert "7 unusable" in report.as_text()
    assert [i for i, _ in load_dataset("chest", root).dropped] == [i for i, _ in report.dropped]


def test_cli_check_json_and_exit_status(pristine, tmp_path, capsys):
    root = _copy(pristine, "chest", tmp_path)
    assert main(["data", "check", "chest", str(root), "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert set(clean) == {"dataset", "root", "images_found", "images", "unusable_images", "dropped",
                          "landmarks", "split_problems", "problems"}
    assert (clean["dataset"], clean["images"], clean["landmarks"]) == ("chest", 9, 6)
    assert (clean["images_found"], clean["unusable_images"], clean["dropped"]) == (9, 0, [])
    (root / "pngs" / "CHNCXR_0004_0.png").write_bytes(b"")
    assert main(["data", "check", "chest", str(root), "--json"]) == 1
    broken = json.loads(capsys.readouterr().out)
    assert broken["images"] == 8 and broken["unusable_images"] == 1
    assert broken["dropped"][0]["image_id"] == "CHNCXR_0004_0" and "empty" in broken["dropped"][0]["reason"]
    assert [p["file"] for p in broken["problems"]] == ["pngs/CHNCXR_0004_0.png"]
    assert main(["data", "check", "chest", str(root)]) == 1
    assert "CHNCXR_0004_0.png" in capsys.readouterr().out


def test_real_samples_check_without_fatal_problems(hand_root, chest_root, capsys):
    assert main(["data", "check", "chest", str(chest_root)]) == 0
    assert "11 usable annotated images" in capsys.readouterr().out
    assert main(["data", "check", "hand", str(hand_root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 9 and report["landmarks"] == 37
    assert any(p["file"] == "jpg/3128.jpg" for p in report["problems"])
