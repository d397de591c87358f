"""Radial errors, MRE/SDR, the clean and zhu protocols, the mean-shape baseline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from xlm_core import XLMError
from xlm_core.datasets.base import Scale
from xlm_core.geometry import from_grid, to_grid
from xlm_core.metrics import (
    cumulative_errors,
    evaluate_clean,
    evaluate_zhu,
    mean_shape_baseline,
    normalise_landmarks,
    per_image_mre,
    place_mean_shape,
    radial_errors,
    score_errors,
)

HEAD = Scale(unit="mm", mm_per_px=0.1)


def test_radial_errors_and_score_by_hand():
    pred = np.array([[[3.0, 4.0], [0.0, 0.0]], [[1.0, 1.0], [10.0, 0.0]]])
    gt = np.zeros_like(pred)
    err = radial_errors(pred, gt)
    np.testing.assert_allclose(err, [[5.0, 0.0], [np.sqrt(2), 10.0]])
    np.testing.assert_allclose(per_image_mre(err), [2.5, (np.sqrt(2) + 10) / 2])
    s = score_errors(err, thresholds=(2, 5, 10.0), unit="px", protocol="clean")
    assert s["n_images"] == 2 and s["n_landmarks"] == 2 and s["unit"] == "px"
    assert s["protocol"] == "clean"
    assert s["mre"] == pytest.approx((5 + 0 + np.sqrt(2) + 10) / 4)
    assert s["mre_std"] == pytest.approx(np.std([5, 0, np.sqrt(2), 10]))
    assert s["sdr"] == {"2": 50.0, "5": 75.0, "10": 100.0}  # 5 <= 5 and 10 <= 10 count
    assert s["per_landmark_mre"] == pytest.approx([(5 + np.sqrt(2)) / 2, 5.0])
    assert s["per_landmark_sdr"]["5"] == [100.0, 50.0]


def test_sdr_boundary_survives_float_rounding():
    # 30 px x 0.1 mm/px is 3.0 in floats; 3 px x 0.1 mm/px = 0.30000000000000004: it is 0.3 mm
    # and must count at 0.3 mm
    pred = np.array([[[30.0, 0.0], [0.0, 25.0], [18.0, 24.0], [0.0, 30.1], [3.0, 0.0]]])
    assert 3.0 * 0.1 > 0.3
    s = evaluate_clean(pred, np.zeros_like(pred), HEAD, thresholds=(0.3, 2.5, 3))
    assert s["sdr"] == {"0.3": 20.0, "2.5": 40.0, "3": 80.0}


def test_sdr_tie_rules_clean_zhu_strict():
    # 3.0000000000000004: a 3 mm tie in exact arithmetic (3 px x 0.1 mm/px x 10) that floats push
    # above 3. clean counts it (tolerance), zhu does not (Zhu's float comparison), strict neither
    err = np.array([[0.1 * 3 * 10, 2.0, 1.0, 4.0]])
    assert err[0, 0] > 3.0
    clean = score_errors(err, (2, 3), "mm", "clean")
    zhu = score_errors(err, (2, 3), "mm", "zhu")
    strict = score_errors(err, (2, 3), "mm", "clean", strict=True)
    assert clean["sdr"] == {"2": 50.0, "3": 75.0}
    assert zhu["sdr"] == {"2": 50.0, "3": 50.0}
    assert strict["sdr"] == {"2": 25.0, "3": 50.0}
    assert strict["per_landmark_sdr"]["2"] == [0.0, 0.0, 100.0, 0.0]
    assert "1e-09" in clean["sdr_rule"] and "Zhu" in zhu["sdr_rule"]
    assert strict["sdr_rule"].startswith("d < t")


def test_cumulative_errors_is_the_share_within_each_distance():
    d, pct = cumulative_errors(np.array([[3.0, 1.0], [2.0, 2.0]]))
    assert d.tolist() == [1.0, 2.0, 2.0, 3.0]
    assert pct.tolist() == [25.0, 75.0, 75.0, 100.0]  # both 2s count at 2
    with pytest.raises(XLMError):
        cumulative_errors(np.array([[1.0, np.nan]]))


def test_clean_non_square_axes_not_swapped():
    # image 2400 x 1935 (H x W), grid 512 x 416: a 2-grid-px x error is 2 * 1935/416 px,
    # a 2-grid-px y error is 2 * 2400/512 px (trap 3: never [2400/S, 1935/S] on (x, y))
    image_hw, grid_hw = (2400, 1935), (512, 416)
    gt = np.array([[[1000.0, 300.0], [500.0, 2000.0]]])
    pred_grid = to_grid(gt, image_hw, grid_hw) + np.array([[[2.0, 0.0], [0.0, 2.0]]])
    pred = from_grid(pred_grid, image_hw, grid_hw)
    s = evaluate_clean(pred, gt, HEAD, thresholds=(1,))
    np.testing.assert_allclose(s["per_landmark_mre"], [2 * 1935 / 416 * 0.1, 2 * 2400 / 512 * 0.1])
    swapped = [2 * 2400 / 416 * 0.1, 2 * 1935 / 512 * 0.1]
    assert not np.allclose(s["per_landmark_mre"], swapped, atol=1e-3)


def test_clean_hand_wrist_rule_per_image():
    # image 0: wrist landmarks 100 px apart -> 0.5 mm/px; image 1: 50 px apart -> 1 mm/px
    gt = np.array(
        [[[0.0, 0.0], [100.0, 0.0], [40.0, 40.0]], [[0.0, 0.0], [0.0, 50.0], [40.0, 40.0]]]
    )
    pred = gt.copy()
    pred[:, 2] += [0.0, 2.0]  # 2 px on landmark 3 in both images
    s = evaluate_clean(pred, gt, Scale(unit="mm", wrist_pair=(0, 1)), thresholds=(1, 2))
    np.testing.assert_allclose(s["per_landmark_mre"], [0, 0, (1.0 + 2.0) / 2])
    assert s["unit"] == "mm" and s["sdr"]["1"] == pytest.approx(100 * 5 / 6)
    assert s["mre"] == pytest.approx(3.0 / 6)


def test_zhu_head_by_hand():
    # gt (1000, 300) on 2400 x 1935 -> grid 512 x 416: (214.59, 63.61) -> rounded (215, 64)
    gt = np.array([[[1000.0, 300.0]]])
    s = evaluate_zhu(np.array([[[218.0, 68.0]]]), gt, [(2400, 1935)], (512, 416), "head", (2, 2.5))
    assert s["mre"] == pytest.approx(5 * 0.46875)  # 0.1 mm x 2400 / 512 per grid px
    assert s["unit"] == "mm" and s["protocol"] == "zhu"
    assert s["sdr"] == {"2": 0.0, "2.5": 100.0}
    # predictions are integer grid coordinates: 217.6 -> 218
    s2 = evaluate_zhu(np.array([[[217.6, 67.8]]]), gt, [(2400, 1935)], (512, 416), "head", (2,))
    assert s2["mre"] == pytest.approx(s["mre"])


def test_zhu_hand_and_chest_by_hand():
    # 1024 x 1024 image on a 512 x 512 grid: x_g = (x + 0.5) / 2 - 0.5
    gt = np.array(
        [[[99.5, 99.5], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [99.5, 299.5], [400.0, 400.0]]]
    )
    # wrist pair 0-based (0, 4): grid (49.5, 49.5), (49.5, 149.5) -> rounded (50, 50), (50, 150)
    pred = to_grid(gt, (1024, 1024), (512, 512))
    pred[0, 5] = [199.75 + 3, 199.75 + 4]  # 5 grid px from the rounded (200, 200)
    s = evaluate_zhu(pred, gt, [(1024, 1024)], (512, 512), "hand", (2, 4))
    per = np.array(s["per_landmark_mre"])
    assert per[5] == pytest.approx(5 * 50 / 100)
    assert s["unit"] == "mm"
    c = evaluate_zhu(pred, gt, [(1024, 1024)], (512, 512), "chest", (3, 6))
    assert c["unit"] == "px" and c["per_landmark_mre"][5] == pytest.approx(5.0)
    with pytest.raises(XLMError):
        evaluate_zhu(pred, gt, [(1024, 1024)], (512, 512), "knee", (3,))


def test_mean_shape_baseline_on_other_sizes():
    train_px = np.array([[[9.5, 19.5]], [[29.5, 39.5]]])  # two 100 x 50 (H x W) images
    norm = normalise_landmarks(train_px, [(100, 50), (100, 50)])
    np.testing.assert_allclose(norm, [[[0.2, 0.2]], [[0.6, 0.4]]])
    shape = mean_shape_baseline(norm)
    np.testing.assert_allclose(shape, [[0.4, 0.3]])
    placed = place_mean_shape(shape, [(100, 50), (200, 400)])
    np.testing.assert_allclose(placed, [[[19.5, 29.5]], [[159.5, 59.5]]])


def test_bad_inputs_raise_xlm_error():
    with pytest.raises(XLMError):
        radial_errors(np.zeros((2, 3, 2)), np.zeros((2, 4, 2)))
    with pytest.raises(XLMError):
        score_errors(np.array([[1.0, np.nan]]), (2,), "px", "clean")
    with pytest.raises(XLMError):  # zero wrist width
        evaluate_clean(
            np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), Scale(unit="mm", wrist_pair=(0, 1)), (2,)
        )


def test_metrics_does_not_import_torch():
    code = "import sys, xlm_core.metrics; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_scores_carry_their_protocol_version():
    from xlm_core.metrics import PROTOCOL_VERSION, scores_are_current

    err = np.array([[1.0, 2.0]])
    clean, zhu = score_errors(err, (2,), "mm", "clean"), score_errors(err, (2,), "mm", "zhu")
    assert clean["protocol_version"] == 1 and zhu["protocol_version"] == PROTOCOL_VERSION["zhu"] == 2
    assert scores_are_current({"test": {"clean": clean, "zhu": zhu}, "heldout": None})
    old_zhu = {k: v for k, v in zhu.items() if k != "protocol_version"}  # before Zhu's exact rule
    assert not scores_are_current({"test": {"clean": clean, "zhu": old_zhu}})
    assert scores_are_current({"test": {"clean": clean, "zhu": None}})  # no zhu for the dataset
