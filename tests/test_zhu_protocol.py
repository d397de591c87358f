"""The ``zhu`` protocol reproduces Zhu et al.'s evaluator (GU2Net), checked on real annotations.

The expected numbers are computed here from the protocol's rules, written out as Zhu et al.'s
code states them (``universal_landmark_detection``: ``config.yaml`` sizes,
``model/datasets/{cephalometric,hand,chest}.py`` ``readLandmark``, ``evaluation.py``
``radial`` / ``get_sdr``), in plain Python, never with the project's metric code:

- grid per dataset, W x H: head 416 x 512, hand 368 x 512, chest 512 x 512;
- truth and prediction mapped by ``round(p * new / old)`` per axis (head ``p*new/old``, hand
  ``p*r`` with ``r = new/old``; chest: ``round(ratio * 512)`` from the label file);
- distance ``sum(((i - j) * s) ** 2) ** 0.5``: the unit's factor on each axis before squaring
  (head 0.46875 mm, hand 50 / grid distance of landmarks 1 and 5 (1-based), chest 1);
- SDR counts ``d <= t``; MRE is the mean of all distances.

The project is then run through every entry point: :func:`xlm_core.metrics.evaluate_zhu`,
``xlm score --protocol zhu`` (``--image-size``, ``--images``, ``--sizes``) and the evaluation
of a run (:func:`xlm_core.evaluation.score_split`, what ``xlm evaluate --protocol zhu`` calls).
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xlm_core import XLMError
from xlm_core.cli import main
from xlm_core.landmark_csv import read_image_sizes, write_landmark_csv

# ------------------------------------------------------------------ Zhu et al.'s rules, written out

ZHU_SIZE = {"head": (416, 512), "hand": (368, 512), "chest": (512, 512)}  # (W, H), config.yaml
HEAD_FACTOR = 0.46875  # evaluation.py CEPH_PHYSICAL_FACTOR (0.1 mm x 2400 / 512)
WRIST_WIDTH = 50  # evaluation.py: hand factor = 50 / radial(gt[0], gt[4])
THRESHOLDS = {"head": (2, 2.5, 3, 4), "hand": (2, 4, 10), "chest": (3, 6, 9)}
ISBI_SIZE = (1935, 2400)  # (W, H)


def head_point(p, origin_wh):
    """cephalometric.py readLandmark: ``round(p*new/old)`` per axis."""
    return tuple(round(v * new / old) for v, new, old in zip(p, ZHU_SIZE["head"], origin_wh))


def hand_point(p, origin_wh):
    """hand.py readLandmark: ``r1, r2 = size / origin_size``, ``round(p * r)``."""
    r1, r2 = [i / j for i, j in zip(ZHU_SIZE["hand"], origin_wh)]
    return (round(p[0] * r1), round(p[1] * r2))


def chest_point(ratio):
    """chest.py readLandmark: ``round(ratio * size)`` per axis."""
    return tuple(round(r * sz) for r, sz in zip(ratio, ZHU_SIZE["chest"]))


def radial(pt1, pt2, factor=1):
    """evaluation.py radial: the factor on each axis before squaring."""
    factor = [factor] * len(pt1)
    return sum(((i - j) * s) ** 2 for i, j, s in zip(pt1, pt2, factor)) ** 0.5


def hand_factor(gt_points):
    return WRIST_WIDTH / radial(gt_points[0], gt_points[4])


def summary(distances, thresholds, strict=False):
    """evaluation.py analysis + get_sdr (``d <= th``), as percentages; ``strict``: Payer's ``<``."""
    n = len(distances)
    if strict:
        sdr = {f"{t:g}": 100 * sum(d < t for d in distances) / n for t in thresholds}
    else:
        sdr = {f"{t:g}": 100 * sum(d <= t for d in distances) / n for t in thresholds}
    return {"mre": math.fsum(distances) / n, "sdr": sdr, "n": n}


def check(score: dict, ref: dict, unit: str) -> None:
    assert score["protocol"] == "zhu" and score["unit"] == unit
    assert score["n_images"] * score["n_landmarks"] == ref["n"]
    assert score["mre"] == pytest.approx(ref["mre"], abs=1e-9, rel=0)
    # exact counts: one landmark more or less moves a percentage by 100 / n, far above 1e-9
    assert list(score["sdr"]) == list(ref["sdr"])
    assert score["sdr"] == pytest.approx(ref["sdr"], abs=1e-9, rel=0)


# ------------------------------------------------------------------ readers of the raw files


def payer_head_px(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Payer's ``id,x1,y1,...`` in mm -> pixels (mm x 10, the ISBI integer pixels)."""
    out = {}
    for row in csv.reader(path.read_text().splitlines()):
        if row:
            v = [round(float(c) * 10, 6) for c in row[1:]]
            out[row[0]] = [(v[k], v[k + 1]) for k in range(0, len(v), 2)]
    return out


def hand_rows(path: Path) -> dict[str, list[tuple[float, float]]]:
    out = {}
    for row in csv.reader(path.read_text().splitlines()):
        if row:
            v = [float(c) for c in row[1:]]
            out[row[0]] = [(v[k], v[k + 1]) for k in range(0, len(v), 2)]
    return out


def chest_ratios(path: Path) -> list[tuple[float, float]]:
    lines = path.read_text().split("\n")
    n = int(lines[0])
    return [tuple(float(v) for v in lines[1 + k].split()) for k in range(n)]


def write_csv(path: Path, points: dict[str, list[tuple[float, float]]]) -> str:
    write_landmark_csv(path, {i: np.array(p, dtype=np.float64) for i, p in points.items()})
    return str(path)


def score_cli(capsys, *args: str) -> dict:
    assert main(["score", *args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def offsets(n_images: int, n_landmarks: int, seed: int, spread: float):
    rng = random.Random(seed)
    return [[(rng.uniform(-spread, spread), rng.uniform(-spread, spread)) for _ in range(n_landmarks)]
            for _ in range(n_images)]


# ------------------------------------------------------------------ head


ISBI_TEST = [f"{i:03d}" for i in range(151, 401)]


@pytest.fixture
def isbi(head_root):
    setup = head_root / "payer_setup"
    return payer_head_px(setup / "all_senior.csv"), payer_head_px(setup / "all_junior.csv")


def test_head_senior_vs_junior_matches_zhu(isbi, tmp_path, capsys):
    senior, junior = isbi
    distances = [radial(head_point(s, ISBI_SIZE), head_point(j, ISBI_SIZE), HEAD_FACTOR)
                 for i in ISBI_TEST for s, j in zip(senior[i], junior[i])]
    ref = summary(distances, THRESHOLDS["head"])
    # the figures of issue 15, from the public evaluator: 2.0426 mm, 64.06/70.76/78.29/86.25 %
    assert round(ref["mre"], 4) == 2.0426
    assert [round(v, 2) for v in ref["sdr"].values()] == [64.06, 70.76, 78.29, 86.25]

    pred = write_csv(tmp_path / "senior.csv", {i: senior[i] for i in ISBI_TEST})
    gt = write_csv(tmp_path / "junior.csv", {i: junior[i] for i in ISBI_TEST})
    out = score_cli(capsys, pred, gt, "--dataset", "head", "--protocol", "zhu",
                    "--image-size", "1935x2400")
    check(out, ref, "mm")
    assert out["grid"] == [416, 512] and "Zhu" in out["sdr_rule"]

    # the library call: predictions given on the grid (as an argmax would be)
    from xlm_core.metrics import evaluate_zhu

    pred_grid = np.array([[head_point(s, ISBI_SIZE) for s in senior[i]] for i in ISBI_TEST], float)
    gt_px = np.array([junior[i] for i in ISBI_TEST], float)
    score = evaluate_zhu(pred_grid, gt_px, [(2400, 1935)] * 250, (512, 416), "head",
                         THRESHOLDS["head"])
    check(score, ref, "mm")

    # the clean protocol keeps its numbers (GU2Net, Payer, landmarker agree: 2.0234488622 mm)
    clean = score_cli(capsys, pred, gt, "--dataset", "head")
    assert clean["protocol"] == "clean"
    assert clean["mre"] == pytest.approx(2.0234488622, abs=1e-9)
    assert [round(v, 2) for v in clean["sdr"].values()] == [63.16, 71.73, 78.21, 86.80]


def test_head_annotator_vs_mean_as_zhu_reads_it(isbi, tmp_path, capsys):
    """Zhu's truth is the mean of both annotators (readLandmark); the senior scored against it."""
    senior, junior = isbi
    mean = {i: [((s[0] + j[0]) / 2, (s[1] + j[1]) / 2) for s, j in zip(senior[i], junior[i])]
            for i in ISBI_TEST}
    distances = [radial(head_point(s, ISBI_SIZE), head_point(m, ISBI_SIZE), HEAD_FACTOR)
                 for i in ISBI_TEST for s, m in zip(senior[i], mean[i])]
    ref = summary(distances, THRESHOLDS["head"])
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("image_id,width,height\n" + "".join(f"{i},1935,2400\n" for i in ISBI_TEST))
    out = score_cli(capsys, write_csv(tmp_path / "s.csv", {i: senior[i] for i in ISBI_TEST}),
                    write_csv(tmp_path / "m.csv", mean), "--dataset", "head", "--protocol", "zhu",
                    "--sizes", str(sizes))
    check(out, ref, "mm")


def test_head_image_001_raw_files_images_dir_and_evaluation(head_root, tmp_path, capsys):
    """ISBI 001 from the original annotation files; its size read from the BMP."""
    from xlm_core.datasets import load_dataset
    from xlm_core.evaluation import SplitPredictions, score_split

    def read(who):
        lines = (head_root / "AnnotationsByMD" / f"400_{who}" / "001.txt").read_text().splitlines()
        return [tuple(float(v) for v in line.split(",")) for line in lines[:19]]

    senior, junior = read("senior"), read("junior")
    mean = [((s[0] + j[0]) / 2, (s[1] + j[1]) / 2) for s, j in zip(senior, junior)]
    with Image.open(head_root / "RawImage" / "TrainingData" / "001.bmp") as img:
        size = img.size
    assert size == ISBI_SIZE
    pred_grid = [head_point(p, size) for p in senior]
    distances = [radial(p, head_point(m, size), HEAD_FACTOR) for p, m in zip(pred_grid, mean)]
    ref = summary(distances, THRESHOLDS["head"])
    out = score_cli(capsys, write_csv(tmp_path / "s.csv", {"001": senior}),
                    write_csv(tmp_path / "m.csv", {"001": mean}), "--dataset", "head",
                    "--protocol", "zhu", "--images", str(head_root / "RawImage"))
    check(out, ref, "mm")

    # xlm evaluate's path: the loader's truth, the model's argmax given on the 512 x 416 grid
    lset = load_dataset("head", head_root)
    grid = np.array([pred_grid], dtype=np.float64)
    split = SplitPredictions.from_grid(lset.samples, [(2400, 1935)], lset.test_size, grid, grid)
    check(score_split(split, lset, None)["zhu"], ref, "mm")


# ------------------------------------------------------------------ hand


def test_hand_real_images_sizes_from_the_files(hand_root, tmp_path, capsys):
    from xlm_core.datasets import load_dataset
    from xlm_core.evaluation import SplitPredictions, score_split

    rows = hand_rows(hand_root / "all.csv")
    ids = sorted(p.stem for p in (hand_root / "jpg").glob("*.jpg") if p.stem in rows)
    assert len(ids) == 9
    sizes = {}
    for i in ids:
        with Image.open(hand_root / "jpg" / f"{i}.jpg") as img:
            sizes[i] = img.size
    assert len(set(sizes.values())) > 1  # images of different sizes, none 368 x 512
    noise = offsets(len(ids), 37, seed=15, spread=25.0)
    pred = {i: [(x + dx, y + dy) for (x, y), (dx, dy) in zip(rows[i], n)] for i, n in zip(ids, noise)}
    distances = []
    pred_grid = []
    for i in ids:
        gt = [hand_point(p, sizes[i]) for p in rows[i]]
        pg = [hand_point(p, sizes[i]) for p in pred[i]]
        pred_grid.append(pg)
        distances += [radial(p, g, hand_factor(gt)) for p, g in zip(pg, gt)]
    ref = summary(distances, THRESHOLDS["hand"])
    out = score_cli(capsys, write_csv(tmp_path / "p.csv", pred),
                    write_csv(tmp_path / "g.csv", {i: rows[i] for i in ids}), "--dataset", "hand",
                    "--protocol", "zhu", "--images", str(hand_root / "jpg"))
    check(out, ref, "mm")
    assert out["wrist_pair"] == [1, 5] and out["grid"] == [368, 512]

    lset = load_dataset("hand", hand_root)  # wrist pair in lset: Payer's; zhu uses Zhu's 1,5
    assert [s.id for s in lset.samples] == ids
    hws = [(sizes[i][1], sizes[i][0]) for i in ids]
    grid = np.array(pred_grid, dtype=np.float64)
    split = SplitPredictions.from_grid(lset.samples, hws, lset.test_size, grid, grid)
    check(score_split(split, lset, None)["zhu"], ref, "mm")


def test_hand_stated_sizes_where_float_order_matters(hand_root, tmp_path, capsys):
    """All hands of all.csv that fit a stated 1280 x 2560 image (predictions, 12 px off at most,
    stay inside it): there ``p * (368/1280)`` and ``p * 368 / 1280`` round differently for some
    points (x = 360: 103.5 exactly, or just below)."""
    rows = hand_rows(hand_root / "all.csv")
    size = (1280, 2560)
    ids = [i for i, pts in rows.items()
           if all(15 < x < size[0] - 15 and 15 < y < size[1] - 15 for x, y in pts)][:150]
    assert len(ids) >= 100
    other_order = sum(round(x * 368 / size[0]) != hand_point((x, y), size)[0]
                      for i in ids for x, y in rows[i])
    assert other_order > 0  # the test tells the two float orders apart
    noise = offsets(len(ids), 37, seed=5, spread=12.0)
    pred = {i: [(x + dx, y + dy) for (x, y), (dx, dy) in zip(rows[i], n)] for i, n in zip(ids, noise)}
    distances = []
    for i in ids:
        gt = [hand_point(p, size) for p in rows[i]]
        distances += [radial(hand_point(p, size), g, hand_factor(gt)) for p, g in zip(pred[i], gt)]
    ref = summary(distances, THRESHOLDS["hand"])
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("image_id,width,height\n" + "".join(f"{i},1280,2560\n" for i in ids))
    out = score_cli(capsys, write_csv(tmp_path / "p.csv", pred),
                    write_csv(tmp_path / "g.csv", {i: rows[i] for i in ids}), "--dataset", "hand",
                    "--protocol", "zhu", "--sizes", str(sizes))
    check(out, ref, "mm")


def test_hand_threshold_ties_fall_as_in_zhus_floats(tmp_path, capsys):
    """Exact ties at 10 mm: 50 mm / wrist width x error, with width and error integer grid
    vectors, is 10 in exact arithmetic. Zhu's float distance (each axis scaled, then squared)
    comes out above 10 for images a and c and at 10 for image b; ``hypot x factor`` gives the
    opposite, and a tolerance counts all three. The zhu protocol follows Zhu's floats."""
    def hand(width, error):
        pts = [(150 + 3 * k, 200 + 5 * k) for k in range(37)]
        pts[0] = (100, 100)
        pts[4] = (100 + width[0], 100 + width[1])
        pred = list(pts)
        pred[9] = (pts[9][0] + error[0], pts[9][1] + error[1])
        return pts, pred

    cases = {"a": hand((30, 25), (6, 5)),  # 50 * sqrt(61) / sqrt(1525) = 10 exactly
             "b": hand((10, 5), (2, 1)),  # 50 * sqrt(5) / sqrt(125) = 10 exactly
             "c": hand((38, 9), (6, 5))}  # 50 * sqrt(61) / sqrt(1525) = 10 exactly
    size = ZHU_SIZE["hand"]  # the image is the grid: the mapping is the identity
    distances, at_tie = [], []
    for gt, pred in cases.values():
        f = hand_factor([hand_point(p, size) for p in gt])
        d = [radial(hand_point(p, size), hand_point(g, size), f) for p, g in zip(pred, gt)]
        distances += d
        at_tie.append(d[9])
    assert at_tie[0] > 10 and at_tie[1] == 10 and at_tie[2] > 10  # float noise, as Zhu computes
    ref = summary(distances, THRESHOLDS["hand"])
    assert ref["sdr"]["10"] == 100 * (3 * 37 - 2) / (3 * 37)
    out = score_cli(capsys, write_csv(tmp_path / "p.csv", {k: v[1] for k, v in cases.items()}),
                    write_csv(tmp_path / "g.csv", {k: v[0] for k, v in cases.items()}),
                    "--dataset", "hand", "--protocol", "zhu", "--image-size", "368x512")
    check(out, ref, "mm")
    assert out["per_landmark_sdr"]["10"][9] == pytest.approx(100 / 3)


# ------------------------------------------------------------------ chest


@pytest.fixture
def chest_set(chest_root):
    """The 11 Shenzhen images (about 750 x 730, not the 512 x 512 grid), their label ratios, and
    predictions on the grid at offsets that put many errors exactly on 3, 6 and 9 px."""
    ids = sorted(p.stem for p in (chest_root / "pngs").glob("*.png"))
    sizes, ratios, gt_grid, pred_grid = {}, {}, {}, {}
    steps = [(3, 0), (0, -6), (6, 8), (-9, 0), (0, 3), (5, 12), (1, 1), (-3, -4), (0, 9), (2, -2)]
    k = 0
    for i in ids:
        with Image.open(chest_root / "pngs" / f"{i}.png") as img:
            sizes[i] = img.size
        ratios[i] = chest_ratios(chest_root / "labels" / f"{i}.txt")
        gt_grid[i] = [chest_point(r) for r in ratios[i]]
        pred_grid[i] = []
        for gx, gy in gt_grid[i]:
            dx, dy = steps[k % len(steps)]
            k += 1
            pred_grid[i].append((min(max(gx + dx, 0), 511), min(max(gy + dy, 0), 511)))
    return ids, sizes, ratios, gt_grid, pred_grid


def test_chest_real_labels_ties_and_strict(chest_root, chest_set, tmp_path, capsys):
    from xlm_core.datasets import load_dataset
    from xlm_core.evaluation import SplitPredictions, score_split

    ids, sizes, ratios, gt_grid, pred_grid = chest_set
    assert all(s != (512, 512) for s in sizes.values())
    distances = [radial(p, g) for i in ids for p, g in zip(pred_grid[i], gt_grid[i])]
    ref = summary(distances, THRESHOLDS["chest"])
    strict = summary(distances, THRESHOLDS["chest"], strict=True)
    assert ref["sdr"] != strict["sdr"]  # exact ties at 3, 6, 9 px: the rules differ here
    # predictions in original pixels (grid point x W / 512): Zhu's mapping brings them back
    pred_px = {i: [(x * sizes[i][0] / 512, y * sizes[i][1] / 512) for x, y in pred_grid[i]]
               for i in ids}
    gt_px = {i: [(rx * sizes[i][0], ry * sizes[i][1]) for rx, ry in ratios[i]] for i in ids}
    args = [write_csv(tmp_path / "p.csv", pred_px), write_csv(tmp_path / "g.csv", gt_px),
            "--dataset", "chest", "--protocol", "zhu", "--images", str(chest_root / "pngs")]
    check(score_cli(capsys, *args), ref, "px")
    out = score_cli(capsys, *args, "--sdr-strict")
    check(out, strict, "px")
    assert out["sdr_rule"].startswith("d < t")

    lset = load_dataset("chest", chest_root)
    hws = [(sizes[i][1], sizes[i][0]) for i in ids]
    grid = np.array([pred_grid[i] for i in ids], dtype=np.float64)
    split = SplitPredictions.from_grid(lset.samples, hws, lset.test_size, grid, grid)
    # the mean-shape baseline: normalised (u, v) placed on each image at u W - 0.5, v H - 0.5
    # (pixel centres), then scored as a prediction: Zhu's mapping, no pixel-centre shift
    shape = np.array([[0.3, 0.2], [0.2, 0.7], [0.45, 0.55], [0.7, 0.2], [0.8, 0.75], [0.6, 0.6]])
    base = []
    for i in ids:
        placed = [(u * sizes[i][0] - 0.5, v * sizes[i][1] - 0.5) for u, v in shape.tolist()]
        mapped = [tuple(round(c * new / old) for c, new, old in zip(pt, ZHU_SIZE["chest"], sizes[i]))
                  for pt in placed]
        base += [radial(m, g) for m, g in zip(mapped, gt_grid[i])]
    scores = score_split(split, lset, shape)
    check(scores["zhu"], ref, "px")
    assert scores["zhu"]["mean_shape_mre"] == pytest.approx(math.fsum(base) / len(base), abs=1e-9)


# ------------------------------------------------------------------ the grid's border, bad input


def test_border_truth_clipped_like_zhus_heatmap_far_outside_refused():
    from xlm_core.metrics import errors_zhu, zhu_to_grid

    # x = 1934 on a 1935-wide image -> round(415.78) = 416: outside the 416 grid; Zhu's Gaussian
    # drawn there peaks on column 415 (its argmax), so the truth is 415
    assert zhu_to_grid(np.array([[1934.0, 0.0]]), (2400, 1935), (512, 416), "head").tolist() == [
        [415.0, 0.0]]
    err, _ = errors_zhu(np.array([[[415.0, 0.0]]]), np.array([[[1934.0, 0.0]]]), [(2400, 1935)],
                        (512, 416), "head")
    assert err.tolist() == [[0.0]]
    with pytest.raises(XLMError, match="more than 8 px outside"):
        zhu_to_grid(np.array([[3000.0, 10.0]]), (2400, 1935), (512, 416), "head")


def test_zhu_score_errors_name_the_problem(head_root, tmp_path, capsys):
    pred = write_csv(tmp_path / "p.csv", {"001": [(10.0, 20.0)], "002": [(5.0, 5.0)]})
    gt = write_csv(tmp_path / "g.csv", {"001": [(12.0, 20.0)], "002": [(5.0, 9.0)]})
    cases = [
        ([], "needs the original image sizes"),
        (["--image-size", "1935x2400", "--unit", "px"], "--unit applies"),
        (["--sizes", str(tmp_path / "nope.csv")], "nope.csv"),
        (["--images", str(head_root / "RawImage")], "no image file for 1 image id(s): 002"),
    ]
    for extra, message in cases:
        assert main(["score", pred, gt, "--dataset", "head", "--protocol", "zhu", *extra]) == 1
        assert message in capsys.readouterr().err
    assert main(["score", pred, gt, "--protocol", "zhu", "--image-size", "100x100"]) == 1
    assert "give --dataset" in capsys.readouterr().err
    assert main(["score", pred, gt, "--dataset", "head", "--image-size", "100x100"]) == 1
    assert "used by --protocol zhu only" in capsys.readouterr().err
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("image_id,width,height\n001,1935,2400\n")
    assert main(["score", pred, gt, "--dataset", "head", "--protocol", "zhu", "--sizes", str(sizes)]) == 1
    assert "sizes.csv: no size for 1 scored image(s): 002" in capsys.readouterr().err
    far = write_csv(tmp_path / "far.csv", {"001": [(12.0, 20.0)], "002": [(5000.0, 9.0)]})
    assert main(["score", pred, far, "--dataset", "head", "--protocol", "zhu",
                 "--image-size", "1935x2400"]) == 1
    assert "far.csv: image '002'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "body, message",
    [
        ("id,w,h\n001,1,2\n", "line 1: header"),
        ("image_id,width,height\n001,1.5,2\n", "line 2: width, height"),
        ("image_id,width,height\n001,0,2\n", "line 2: width and height must be > 0"),
        ("image_id,width,height\n001,1,2\n001,1,2\n", "line 3: duplicate image '001'"),
        ("image_id,width,height\n", "no image rows"),
    ],
)
def test_sizes_csv_errors_name_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad_sizes.csv"
    path.write_text(body)
    with pytest.raises(XLMError, match="bad_sizes.csv") as info:
        read_image_sizes(path)
    assert message in str(info.value)


def test_sizes_csv_reads_height_width(tmp_path):
    path = tmp_path / "sizes.csv"
    path.write_text("image_id,width,height,note\n001,1935,2400,x\n002,10,20,\n")
    assert read_image_sizes(path) == {"001": (2400, 1935), "002": (20, 10)}
