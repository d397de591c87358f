"""One decision about unusable data, shared by ``xlm data check`` and every loader.

On copies of the real samples in ../shared/data: a truncated JPEG and a NaN coordinate are
both dropped when the set is loaded (default options: no full decode asked for), each named
with its reason in ``LandmarkSet.dropped``; ``xlm data check`` drops the same ids, counts
images (not problems), reports an empty split, and says where an incomplete set comes from.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from xlm_core.cli import main
from xlm_core.datasets import REAL_SET_NAMES, check_dataset, load_dataset, usable
from xlm_core.datasets.check import looks_complete
from xlm_core.datasets.sources import SOURCES

REPO = Path(__file__).resolve().parents[1]


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _hand_copy(hand_root: Path, dest: Path) -> Path:
    shutil.copytree(hand_root / "jpg", dest / "jpg")
    shutil.copy(hand_root / "all.csv", dest / "all.csv")
    return dest


def _set_hand_value(root: Path, image_id: str, column: int, value: str) -> None:
    rows = [r.split(",") for r in (root / "all.csv").read_text().splitlines()]
    for row in rows:
        if row[0] == image_id:
            row[column] = value
    (root / "all.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")


def test_loader_drops_truncated_jpeg_and_nan_with_reasons(hand_root, tmp_path):
    root = _hand_copy(hand_root, tmp_path / "hand")
    _truncate(root / "jpg" / "3167.jpg")
    _set_hand_value(root, "3177", 3, "nan")  # landmark 2, x
    lset = load_dataset("hand", root)  # headers only: the quick completeness test finds 3167
    assert [i for i, _ in lset.dropped] == ["3167", "3177"]
    reasons = dict(lset.dropped)
    assert "jpg/3167.jpg" in reasons["3167"] and "truncated" in reasons["3167"]
    assert "all.csv" in reasons["3177"] and "NaN" in reasons["3177"] and "landmark 2 x" in reasons["3177"]
    assert len(lset.samples) == 7 and not {"3167", "3177"} & set(lset.by_id())
    assert lset.images_found == 10  # 3128.jpg has no row: not annotated, not "unusable"
    # xlm data check (decodes everything) drops exactly the same images
    report = check_dataset("hand", root)
    assert report.dropped == lset.dropped
    assert report.images == 7 and not report.ok


def test_pristine_real_samples_drop_nothing(hand_root, chest_root, head_root):
    for name, root in (("hand", hand_root), ("chest", chest_root), ("head", head_root)):
        lset = load_dataset(name, root)
        assert lset.dropped == [], name
        assert len(lset.samples) == {"hand": 9, "chest": 11, "head": 1}[name]


@pytest.mark.parametrize("name,rel", [("hand", "jpg/3167.jpg"), ("chest", "pngs/CHNCXR_0001_0.png"),
                                      ("head", "RawImage/TrainingData/001.bmp")])
def test_usable_decides_on_real_images(name, rel, request, tmp_path):
    source = request.getfixturevalue(f"{name}_root") / rel
    assert looks_complete(source)
    ok, reasons = usable(source)
    assert ok and reasons == []
    cut = tmp_path / Path(rel).name
    cut.write_bytes(source.read_bytes())
    _truncate(cut, 0.6)
    assert not looks_complete(cut)
    ok, reasons = usable(cut)
    assert not ok and "unreadable image" in reasons[0] and "truncated" in reasons[0]


def test_usable_landmarks(hand_root):
    image = hand_root / "jpg" / "3167.jpg"
    assert usable(image, np.array([[10.0, 20.0], [30.0, 40.0]])) == (True, [])
    ok, reasons = usable(image, np.array([[10.0, np.nan], [30.0, 40.0]]))
    assert not ok and "NaN" in reasons[0] and "landmarks 1" in reasons[0]
    ok, reasons = usable(image, np.array([[10.0, 20.0], [-5.0, 40.0]]))
    assert not ok and "outside" in reasons[0]


def test_check_reports_empty_split_and_counts_images(head_root, capsys):
    report = check_dataset("head", head_root)
    assert report.images_found == 1 and report.images == 1 and report.dropped == []
    assert any("no test images" in t for t in report.split_problems) and not report.ok
    assert main(["data", "check", "head", str(head_root)]) == 1
    out = capsys.readouterr().out
    assert "1 image files found, 1 usable annotated images, 0 unusable" in out
    assert "ERROR split: no test images" in out
    assert "holds 1 image files, 1 usable annotated, of the 400 annotated images" in out
    assert "AnnotationsByMD/400_senior/NNN.txt" in out and "figshare" in out


def test_check_counts_unusable_images_not_problems(hand_root, tmp_path, capsys):
    root = _hand_copy(hand_root, tmp_path / "hand")
    # two problems in one image (NaN and a point outside), one truncated image
    _set_hand_value(root, "3177", 3, "nan")
    _set_hand_value(root, "3177", 5, "abc")
    _truncate(root / "jpg" / "3229.jpg")
    assert main(["data", "check", "hand", str(root)]) == 1
    out = capsys.readouterr().out
    assert "10 image files found, 7 usable annotated images, 2 unusable" in out
    assert "unusable images (skipped by every loader): 3177, 3229" in out


def test_check_says_where_an_empty_root_comes_from(tmp_path, capsys):
    for name in ("head", "hand", "chest"):
        assert main(["data", "check", name, str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("xlm: error:") and "does not exist" in err
        source = SOURCES[name]
        assert f"where to get {name}" in err and "terms of use" in err
        for item in source.layout:
            assert item.path in err
            if item.count is not None:
                assert re.search(rf"{re.escape(item.path)}\s+{item.count} files", err), item.path


def test_reproduce_chapter_states_the_same_layout():
    text = (REPO / "book" / "reproduce.md").read_text()
    for name, source in SOURCES.items():
        # the real sets keep their public repositories' folder names under --data-root
        prefix = "" if name in REAL_SET_NAMES else f"{name}/"
        for item in source.layout:
            row = f"| `{prefix}{item.path}` | {1 if item.count is None else item.count} |"
            assert row in text, row
    for words in ("Wang et al. 2016", "figshare", "USC Image Processing and Informatics Lab",
                  "HeatmapRegression", "all.csv", "Jaeger et al. 2014", "National Library of Medicine",
                  "chest_labels.zip", "GU2Net"):
        assert words in text, words


def test_own_dataset_yaml_drops_the_same_way(tmp_path):
    """A LabelMe dataset described by its own dataset.yaml: the same decision, the same list."""
    import json

    from xlm_core.datasets.synth import write_phantoms

    root = write_phantoms("hand", tmp_path / "lm", n=4, seed=0, size_wh=(46, 64), fmt="labelme")
    _truncate(root / "images" / "1001.png")
    doc = json.loads((root / "images" / "1003.json").read_text())
    doc["shapes"][4]["points"] = [["NaN", 12.0]]
    (root / "images" / "1003.json").write_text(json.dumps(doc))
    lset = load_dataset(root / "dataset.yaml", None)
    assert [i for i, _ in lset.dropped] == ["1001", "1003"]
    reasons = dict(lset.dropped)
    assert "truncated" in reasons["1001"] and "1003.json" in reasons["1003"] and "NaN" in reasons["1003"]
    assert sorted(lset.by_id()) == ["1002", "1004"]
    assert check_dataset(root / "dataset.yaml", None).dropped == lset.dropped
    # the older generic loader name reads the same files with the same decision
    legacy = load_dataset("labelme", root)
    assert [i for i, _ in legacy.dropped] == ["1001", "1003"]
