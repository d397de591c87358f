"""xlm_core.report.analysis on hand-built arrays with expected values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from xlm_core import XLMError
from xlm_core.geometry import to_grid
from xlm_core.heatmaps import gaussian_heatmaps
from xlm_core.landmark_csv import write_landmark_csv
from xlm_core.report.analysis import (
    per_landmark_table,
    protocol_table,
    read_error_matrix,
    worst_predictions,
    wrist_width_ratio,
)


def _chest_off_grid():
    """2 images 1024x1024, grid 64x64 (16 px per grid px), 3 landmarks each at grid
    positions k + (0.3, 0.4): integer argmax misses by |(0.3, 0.4)| = 0.5 grid px = 8 px;
    rounding the ground truth on the grid (zhu) hides exactly that miss."""
    image_hw, grid_hw = (1024, 1024), (64, 64)
    centres = np.array([[[10, 12], [30, 40], [50, 20]], [[20, 20], [41, 9], [33, 50]]], float)
    grid_xy = centres + np.array([0.3, 0.4])
    gt_px = (grid_xy + 0.5) * 16.0 - 0.5  # inverse of to_grid at scale 1/16
    assert np.allclose(to_grid(gt_px, image_hw, grid_hw), grid_xy)
    maps = np.stack([gaussian_heatmaps(g, grid_hw, sigma=2.0) for g in grid_xy])
    return maps, gt_px, [image_hw, image_hw], grid_hw


def _row(table, decoding, protocol, wrist_pair=None):
    sel = (table["decoding"] == decoding) & (table["protocol"] == protocol)
    sel &= table["wrist_pair"].isna() if wrist_pair is None else table["wrist_pair"] == wrist_pair
    rows = table[sel]
    assert len(rows) == 1
    return rows.iloc[0]


def test_protocol_table_argmax_vs_subpixel_on_off_grid_gaussians():
    maps, gt_px, hws, _ = _chest_off_grid()
    table = protocol_table(gt_px, hws, "chest", heatmaps=maps)
    assert len(table) == 4
    assert list(table[["decoding", "protocol"]].itertuples(index=False, name=None)) == [
        ("argmax", "clean"), ("argmax", "zhu"), ("subpixel", "clean"), ("subpixel", "zhu")
    ]
    sub_clean = _row(table, "subpixel", "clean")
    arg_clean = _row(table, "argmax", "clean")
    assert sub_clean["mre"] == pytest.approx(0.0, abs=1e-4)  # exact up to float32 maps
    assert arg_clean["mre"] == pytest.approx(8.0, abs=1e-9)  # 0.5 grid px x 16 px
    assert arg_clean["mre"] > sub_clean["mre"]
    assert (arg_clean["sdr_3"], arg_clean["sdr_6"], arg_clean["sdr_9"]) == (0.0, 0.0, 100.0)
    assert sub_clean["sdr_3"] == 100.0
    # zhu maps the truth by round(p * new / old), without the pixel-centre shift (Zhu et al.'s
    # evaluator): 16k + 12.3 px -> k + 0.77 -> k + 1 on both axes, one diagonal grid pixel from
    # the argmax at k (the shift would have put it on k: error 0)
    assert _row(table, "argmax", "zhu")["mre"] == pytest.approx(np.sqrt(2), abs=1e-12)
    assert _row(table, "subpixel", "zhu")["mre"] == pytest.approx(np.sqrt(2), abs=1e-12)
    assert set(table["unit"]) == {"px"}
    assert table["n_images"].tolist() == [2] * 4 and table["n_landmarks"].tolist() == [3] * 4
    assert table["wrist_pair"].isna().all()


def test_protocol_table_same_with_decoded_grids_as_with_heatmaps():
    maps, gt_px, hws, grid_hw = _chest_off_grid()
    from xlm_core.heatmaps import decode_argmax, decode_subpixel

    a = protocol_table(gt_px, hws, "chest", heatmaps=maps)
    b = protocol_table(
        gt_px, hws, "chest", grid_argmax=decode_argmax(maps),
        grid_subpixel=decode_subpixel(maps), grid_hw=grid_hw,
    )
    assert np.allclose(a["mre"], b["mre"])
    only_argmax = protocol_table(
        gt_px, hws, "chest", grid_argmax=decode_argmax(maps), grid_hw=grid_hw
    )
    assert set(only_argmax["decoding"]) == {"argmax"}
    # no subpixel/clean row: the reference is the first row
    assert only_argmax["mre_change_pct"].iloc[0] == 0.0


def _hand_two_widths(offset_px=(2.0, 0.0)):
    """One 256x256 hand image on a 256x256 grid (to_grid is the identity), 37 landmarks at
    integer pixels; Zhu's pair (0-based 0, 4) 40 px apart, Payer's (1, 5) 50 px apart.
    Every prediction is off by ``offset_px`` = 2 px."""
    rng = np.random.default_rng(0)
    gt = rng.integers(60, 200, size=(1, 37, 2)).astype(float)
    gt[0, 0], gt[0, 4] = (100, 100), (140, 100)  # width 40
    gt[0, 1], gt[0, 5] = (100, 150), (130, 190)  # width sqrt(30^2 + 40^2) = 50
    pred = gt + np.asarray(offset_px)
    return gt, pred


def test_protocol_table_hand_wrist_pairs_ratio_is_the_width_ratio():
    gt, pred = _hand_two_widths()
    table = protocol_table(
        gt, [(256, 256)], "hand", grid_argmax=pred, grid_subpixel=pred, grid_hw=(256, 256)
    )
    assert len(table) == 2 * 2 * 2
    assert set(table["wrist_pair"]) == {"2,6", "1,5"}
    for decoding in ("argmax", "subpixel"):
        for protocol in ("clean", "zhu"):
            payer = _row(table, decoding, protocol, "2,6")["mre"]
            zhu = _row(table, decoding, protocol, "1,5")["mre"]
            assert payer == pytest.approx(2.0 * 50 / 50)  # 2 px x 50 mm / 50 px
            assert zhu == pytest.approx(2.0 * 50 / 40)  # 2 px x 50 mm / 40 px
            assert zhu / payer == pytest.approx(50 / 40)
    assert set(table["unit"]) == {"mm"}
    # the reference is subpixel/clean/Payer: the Zhu pair reads 25 % higher
    assert _row(table, "subpixel", "clean", "2,6")["mre_change_pct"] == pytest.approx(0.0)
    assert _row(table, "argmax", "zhu", "1,5")["mre_change_pct"] == pytest.approx(25.0)
    assert wrist_width_ratio(gt) == pytest.approx([40 / 50])
    assert wrist_width_ratio(gt, (1, 5), (0, 4)) == pytest.approx([50 / 40])


def test_protocol_table_head_zhu_unit_is_grid_scaled():
    """Head 2400x1935 (H x W) on a 512x416 grid: zhu's unit is 0.1 x 2400/512 = 0.46875 mm per
    grid px whichever axis the error lies on; a 1 grid px miss along x in clean terms is
    0.1 x 1935/416 mm (x scales with the widths)."""
    image_hw, grid_hw = (2400, 1935), (512, 416)
    gt_grid = np.array([[[100.0, 200.0], [300.0, 50.0]]])  # on pixel centres of the grid
    gt_px = (gt_grid + 0.5) * np.array([1935 / 416, 2400 / 512]) - 0.5
    pred = gt_grid + np.array([1.0, 0.0])
    table = protocol_table(
        gt_px, [image_hw], "head", grid_argmax=pred, grid_hw=grid_hw, thresholds=(0.4, 0.5)
    )
    zhu = _row(table, "argmax", "zhu")
    clean = _row(table, "argmax", "clean")
    assert zhu["mre"] == pytest.approx(0.46875)
    assert clean["mre"] == pytest.approx(0.1 * 1935 / 416)
    assert (zhu["sdr_0.4"], zhu["sdr_0.5"]) == (0.0, 100.0)
    assert zhu["mre"] > clean["mre"]  # the grid unit follows H, larger than W's on this image


def test_protocol_table_rejects_bad_input():
    maps, gt_px, hws, _ = _chest_off_grid()
    with pytest.raises(XLMError, match="unknown dataset"):
        protocol_table(gt_px, hws, "labelme", heatmaps=maps)
    with pytest.raises(XLMError, match="needs heatmaps"):
        protocol_table(gt_px, hws, "chest")
    with pytest.raises(XLMError, match="not both"):
        protocol_table(gt_px, hws, "chest", heatmaps=maps, grid_argmax=gt_px)
    with pytest.raises(XLMError, match="grid_hw"):
        protocol_table(gt_px, hws, "chest", grid_argmax=gt_px)
    with pytest.raises(XLMError, match="image sizes"):
        protocol_table(gt_px, hws[:1], "chest", heatmaps=maps)
    with pytest.raises(XLMError, match="differ in shape"):
        protocol_table(gt_px[:, :2], hws, "chest", heatmaps=maps)
    gt, pred = _hand_two_widths()
    with pytest.raises(XLMError, match="wrist pair"):
        protocol_table(gt, [(256, 256)], "hand", grid_argmax=pred, grid_hw=(256, 256),
                       wrist_pairs=[(0, 40)])


def test_per_landmark_table_worked_values():
    errors = np.array([[1.0, 4.0], [2.0, 5.0], [3.0, 12.0]])
    table = per_landmark_table(errors, thresholds=(2.0, 5.0), names=["sella", "nasion"])
    assert table["landmark"].tolist() == [1, 2]
    assert table["name"].tolist() == ["sella", "nasion"]
    assert table["mre"].tolist() == pytest.approx([2.0, 7.0])
    assert table["median"].tolist() == pytest.approx([2.0, 5.0])
    assert table["max"].tolist() == pytest.approx([3.0, 12.0])
    assert table["mre_std"].tolist() == pytest.approx([np.sqrt(2 / 3), np.sqrt(38 / 3)])
    assert table["sdr_2"].tolist() == pytest.approx([200 / 3, 0.0])
    assert table["sdr_5"].tolist() == pytest.approx([100.0, 200 / 3])
    assert per_landmark_table(errors, (2.0,))["name"].tolist() == ["1", "2"]
    with pytest.raises(XLMError, match="landmark names"):
        per_landmark_table(errors, (2.0,), names=["one"])


def test_worst_predictions_by_landmark_and_by_image():
    errors = np.array([[1.0, 9.0], [8.0, 4.0], [3.0, 4.0]])
    ids = ["a", "b", "c"]
    worst = worst_predictions(errors, ids, k=3)
    assert worst[["image_id", "landmark", "error"]].values.tolist() == [
        ["a", 2, 9.0], ["b", 1, 8.0], ["b", 2, 4.0]  # tie 4.0: b before c (input order)
    ]
    assert worst["rank"].tolist() == [1, 2, 3]
    images = worst_predictions(errors, ids, k=10, by="image")
    assert images["image_id"].tolist() == ["b", "a", "c"]  # MRE 6, 5, 3.5
    assert images["mre"].tolist() == pytest.approx([6.0, 5.0, 3.5])
    assert images["worst_landmark"].tolist() == [1, 2, 2]
    assert images["max_error"].tolist() == [8.0, 9.0, 4.0]
    with pytest.raises(XLMError, match="k must"):
        worst_predictions(errors, ids, k=0)
    with pytest.raises(XLMError, match="image ids"):
        worst_predictions(errors, ids[:2])
    with pytest.raises(XLMError, match="by must"):
        worst_predictions(errors, ids, by="landmarks")


def test_read_error_matrix_round_trip(tmp_path):
    path = tmp_path / "predictions.csv"
    landmarks = {"001": np.zeros((3, 2)), "002": np.ones((3, 2)), "010": np.ones((3, 2))}
    err = {"001": [1.0, 2.0, 3.0], "002": [4.0, 5.0, 6.0], "010": [7.0, 8.0, 9.0]}
    split = {"001": "test", "002": "test", "010": "heldout"}
    write_landmark_csv(path, landmarks, extra_columns={"error": err, "split": split})
    ids, errors = read_error_matrix(path)
    assert ids == ["001", "002", "010"]  # ids stay text
    assert errors.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    ids, errors = read_error_matrix(path, split="heldout")
    assert ids == ["010"] and errors.tolist() == [[7, 8, 9]]
    with pytest.raises(XLMError, match="missing column"):
        read_error_matrix(path, column="error_px")
    with pytest.raises(XLMError, match="no rows of split"):
        read_error_matrix(path, split="val")
    lines = path.read_text().splitlines()
    (tmp_path / "gap.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(XLMError, match="lacks some"):
        read_error_matrix(tmp_path / "gap.csv")


def test_protocol_table_says_which_grid_and_how_large_a_grid_pixel_is():
    maps, gt_px, hws, grid_hw = _chest_off_grid()
    table = protocol_table(gt_px, hws, "chest", heatmaps=maps)
    zhu = table[table["protocol"] == "zhu"]
    clean = table[table["protocol"] == "clean"]
    assert set(zhu["measured_on"]) == {f"{grid_hw[0]}x{grid_hw[1]} grid"}
    assert set(clean["measured_on"]) == {"original image"} and clean["grid_step"].isna().all()
    assert zhu["grid_step"].tolist() == pytest.approx([1.0, 1.0])  # chest: grid px
    gt, pred = _hand_two_widths()
    hand = protocol_table(gt, [(256, 256)], "hand", grid_argmax=pred, grid_subpixel=pred, grid_hw=(256, 256))
    # one grid px is 50 mm / wrist width on the grid: 50/50 (Payer's pair), 50/40 (Zhu's)
    assert _row(hand, "argmax", "zhu", "2,6")["grid_step"] == pytest.approx(1.0)
    assert _row(hand, "argmax", "zhu", "1,5")["grid_step"] == pytest.approx(1.25)
