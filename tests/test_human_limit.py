"""Inter-observer limit on the head: real ISBI annotations reproduce the shared README."""

from __future__ import annotations

import numpy as np
import pytest

from xlm_core import XLMError
from xlm_core.report.human_limit import human_limit_from_payer, human_limit_table, load_payer_mm_csv


def test_table_by_hand():
    senior = np.array([[[0.0, 0.0], [10.0, 10.0]]])
    junior = np.array([[[40.0, 0.0], [10.0, 10.0]]])  # 4 mm apart on landmark 1
    rows = {r["comparison"]: r for r in human_limit_table(senior, junior, thresholds=(2, 4))}
    assert rows["senior vs junior"]["per_landmark_mre"] == pytest.approx([4.0, 0.0])
    assert rows["senior vs mean"]["mre"] == pytest.approx(1.0)  # 2 mm / 2 landmarks
    assert rows["junior vs mean"]["sdr"] == {"2": 100.0, "4": 100.0}
    with pytest.raises(XLMError):
        human_limit_table(senior, junior[:, :1])


def test_isbi_test_images_reproduce_readme(head_root):
    setup = head_root / "payer_setup"
    ids = [f"{i:03d}" for i in range(151, 401)]
    rows = {
        r["comparison"]: r
        for r in human_limit_from_payer(setup / "all_senior.csv", setup / "all_junior.csv", ids)
    }
    sj = rows["senior vs junior"]
    assert (sj["n_images"], sj["n_landmarks"], sj["unit"]) == (250, 19, "mm")
    assert round(sj["mre"], 3) == 2.023
    assert [round(v, 2) for v in sj["sdr"].values()] == [63.16, 71.73, 78.21, 86.80]
    for name in ("senior vs mean", "junior vs mean"):
        assert round(rows[name]["mre"], 3) == 1.012
        assert [round(v, 2) for v in rows[name]["sdr"].values()] == [86.80, 91.94, 95.18, 98.27]


def test_payer_loader(head_root, tmp_path):
    ids, px = load_payer_mm_csv(head_root / "payer_setup" / "all_senior.csv")
    assert len(ids) == 400 and ids[0] == "001" and px.shape == (400, 19, 2)
    np.testing.assert_array_equal(px[0, 0], [835.0, 996.0])  # 83.5 mm, 99.6 mm
    assert np.array_equal(px, np.round(px))  # integer pixels, no float noise
    bad = tmp_path / "bad.csv"
    bad.write_text("001,1,2,3\n")
    with pytest.raises(XLMError, match="bad.csv: line 1"):
        load_payer_mm_csv(bad)
