"""Landmark CSV I/O and ``xlm score`` (junior vs senior ISBI annotations, the README figures)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xlm_core import XLMError
from xlm_core.cli import main
from xlm_core.landmark_csv import read_landmark_csv, write_landmark_csv

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS_MM = (2, 2.5, 3, 4)


# ---------------------------------------------------------------- landmark CSV


def test_csv_round_trip_keeps_ids_and_floats(tmp_path):
    data = {"001": np.array([[1.25, 2.0], [3.1, 1e-7]]), "010": np.array([[5.0, 6.0], [7.0, 8.0]])}
    path = tmp_path / "lm.csv"
    write_landmark_csv(
        path, data, extra_columns={"fold": {"001": 2, "010": 3}, "conf": {"001": [0.5, 0.6]}}
    )
    lines = path.read_text().splitlines()
    assert lines[0] == "image_id,landmark,x,y,fold,conf"
    assert lines[1] == "001,1,1.25,2.0,2,0.5" and lines[4] == "010,2,7.0,8.0,3,"
    back = read_landmark_csv(path)
    assert list(back) == ["001", "010"]
    for k, xy in data.items():
        np.testing.assert_array_equal(back[k], xy)  # exact round trip
    assert not list(tmp_path.glob(".lm.csv.*"))  # no temporary left behind


@pytest.mark.parametrize(
    "body, message",
    [
        ("id,landmark,x,y\n", "line 1: header"),
        ("image_id,landmark,x,y\n001,1,1,2\n001,x,1,2\n", "line 3: landmark 'x'"),
        ("image_id,landmark,x,y\n001,0,1,2\n", "line 2: landmark 0"),
        ("image_id,landmark,x,y\n001,1,1,abc\n", "line 2: x, y"),
        ("image_id,landmark,x,y\n001,1,nan,2\n", "line 2: non-finite"),
        (
            "image_id,landmark,x,y\n001,1,1,2\n001,2,1,2\n001,1,3,4\n",
            "line 4: duplicate landmark 1",
        ),
        (
            "image_id,landmark,x,y\n001,1,1,2\n001,2,1,2\n002,2,1,2\n",
            "line 4: image '002' lacks landmark",
        ),
        ("image_id,landmark,x,y\n", "no landmark rows"),
    ],
)
def test_csv_read_errors_name_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(XLMError, match="bad.csv") as info:
        read_landmark_csv(path)
    assert message in str(info.value)


def test_csv_missing_file(tmp_path):
    with pytest.raises(XLMError, match="nope.csv"):
        read_landmark_csv(tmp_path / "nope.csv")


# ---------------------------------------------------------------- xlm score


def _payer_to_csv(src: Path, dst: Path, ids: list[str]) -> np.ndarray:
    """Payer's ``id,x1,y1,...`` in mm -> landmark CSV in pixels (mm x 10), written by hand."""
    rows = {}
    for line in src.read_text().splitlines():
        parts = line.split(",")
        rows[parts[0]] = np.array([float(v) for v in parts[1:]]).reshape(-1, 2)
    px = np.stack([np.round(rows[i] * 10.0, 6) for i in ids])
    with open(dst, "w") as fh:
        fh.write("image_id,landmark,x,y\n")
        for image_id, lms in zip(ids, px):
            fh.writelines(f"{image_id},{k},{x},{y}\n" for k, (x, y) in enumerate(lms, start=1))
    return px


@pytest.fixture
def isbi_csvs(head_root, tmp_path):
    ids = [f"{i:03d}" for i in range(151, 401)]
    setup = head_root / "payer_setup"
    junior = _payer_to_csv(setup / "all_junior.csv", tmp_path / "junior.csv", ids)
    senior = _payer_to_csv(setup / "all_senior.csv", tmp_path / "senior.csv", ids)
    return tmp_path / "junior.csv", tmp_path / "senior.csv", junior, senior


def _independent(junior_px: np.ndarray, senior_px: np.ndarray) -> dict:
    """Integer-pixel reference: squared distances compared with (t / 0.1 mm)^2 exactly."""
    d2 = ((junior_px - senior_px) ** 2).sum(-1)  # integers: the ISBI coordinates are integer px
    assert np.array_equal(junior_px, np.round(junior_px))
    return {
        "mre": float(np.sqrt(d2).mean() * 0.1),
        "sdr": {f"{t:g}": 100.0 * float((d2 <= (t * 10) ** 2).mean()) for t in THRESHOLDS_MM},
    }


ARGS = ["--mm-per-px", "0.1", "--thresholds", "2", "2.5", "3", "4", "--json"]


def _check(out: dict, ref: dict) -> None:
    assert (out["n_images"], out["n_landmarks"], out["unit"]) == (250, 19, "mm")
    assert out["mre"] == pytest.approx(ref["mre"], rel=1e-12)
    assert list(out["sdr"]) == ["2", "2.5", "3", "4"]
    assert out["sdr"] == pytest.approx(ref["sdr"], abs=1e-9)
    # the shared README's figures (integer pixel coordinates)
    assert round(out["mre"], 3) == 2.023
    assert [round(v, 2) for v in out["sdr"].values()] == [63.16, 71.73, 78.21, 86.80]


def test_score_junior_vs_senior_in_process(isbi_csvs, capsys):
    junior_csv, senior_csv, junior, senior = isbi_csvs
    assert main(["score", str(junior_csv), str(senior_csv), *ARGS]) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object
    _check(out, _independent(junior, senior))
    assert out["protocol"] == "clean" and out["wrist_pair"] is None


def test_score_junior_vs_senior_subprocess(isbi_csvs):
    exe = Path(sys.executable).with_name("xlm")
    if not exe.exists():
        exe = Path(shutil.which("xlm") or REPO / ".venv" / "bin" / "xlm")
    if not exe.exists():
        pytest.skip("the xlm entry point is not installed")
    junior_csv, senior_csv, junior, senior = isbi_csvs
    cmd = [str(exe), "score", str(junior_csv), str(senior_csv), *ARGS]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    _check(json.loads(proc.stdout), _independent(junior, senior))


def _write_pair(tmp_path, pred: dict, gt: dict) -> tuple[str, str]:
    write_landmark_csv(tmp_path / "pred.csv", pred)
    write_landmark_csv(tmp_path / "gt.csv", gt)
    return str(tmp_path / "pred.csv"), str(tmp_path / "gt.csv")


def _hand_like(width_px: float) -> np.ndarray:
    lm = np.zeros((6, 2))
    lm[1] = [0.0, 0.0]
    lm[5] = [width_px, 0.0]  # 1-based landmarks 2 and 6: Payer's wrist pair
    lm[0] = [0.0, 10.0 * width_px]  # 1-based landmark 1 far away: Zhu's pair gives another width
    return lm


def test_score_hand_prints_wrist_pair_and_table(tmp_path, capsys):
    gt = {"a": _hand_like(100.0), "b": _hand_like(50.0)}
    pred = {k: v + [[0.0, 2.0]] for k, v in gt.items()}  # 2 px everywhere
    p, g = _write_pair(tmp_path, pred, gt)
    assert main(["score", p, g, "--dataset", "hand"]) == 0
    text = capsys.readouterr().out
    assert "wrist pair: landmarks 2 and 6" in text
    assert "MRE: 1.500" in text  # 2 px x 0.5 mm/px and 2 px x 1 mm/px
    assert len([ln for ln in text.splitlines() if ln.strip().split(" ")[0].isdigit()]) == 6
    assert main(["score", p, g, "--dataset", "hand", "--wrist", "1,2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["wrist_pair"] == [1, 2] and out["sdr"].keys() == {"2", "4", "10"}
    assert out["mre"] == pytest.approx((2 * 50 / 1000 + 2 * 50 / 500) / 2)


def test_score_units_and_errors(tmp_path, capsys):
    gt = {"x": np.array([[0.0, 0.0], [5.0, 5.0]]), "y": np.array([[1.0, 1.0], [2.0, 2.0]])}
    pred = {"x": gt["x"] + 3.0, "z": gt["y"]}
    p, g = _write_pair(tmp_path, pred, gt)
    assert main(["score", p, g]) == 1
    err = capsys.readouterr().err
    assert "only in" in err and "z" in err and "y" in err and "--intersect" in err
    assert (
        main(["score", p, g, "--intersect", "--unit", "px", "--thresholds", "4", "5", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == 1 and out["unit"] == "px"
    assert out["mre"] == pytest.approx(3 * np.sqrt(2)) and out["sdr"] == {"4": 0.0, "5": 100.0}
    assert main(["score", p, g, "--intersect", "--unit", "mm"]) == 1  # no spacing given
    assert main(["score", p, g, "--intersect", "--mm-per-px", "0.1", "--wrist", "1,2"]) == 1
    assert main(["score", p, g, "--intersect", "--dataset", "chest", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sdr"] == {"3": 0.0, "6": 100.0, "9": 100.0}


def test_score_reports_sdr_without_thresholds_and_names_the_rule(tmp_path, capsys):
    """No --dataset, no --thresholds: the unit's stated default thresholds (px 3 6 9, mm
    2 2.5 3 4), said so; the tie rule printed; --sdr-strict drops the exact ties."""
    gt = {"a": np.array([[0.0, 0.0], [10.0, 10.0], [20.0, 0.0]])}
    pred = {"a": gt["a"] + np.array([[3.0, 0.0], [0.0, 6.0], [0.0, 25.0]])}  # 3, 6, 25 px
    p, g = _write_pair(tmp_path, pred, gt)
    assert main(["score", p, g, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unit"] == "px" and out["thresholds_source"] == "default for unit px"
    assert out["sdr"] == pytest.approx({"3": 100 / 3, "6": 200 / 3, "9": 200 / 3})
    assert out["sdr_rule"].startswith("d <= t")
    assert main(["score", p, g, "--sdr-strict", "--json"]) == 0
    strict = json.loads(capsys.readouterr().out)
    assert strict["sdr"] == pytest.approx({"3": 0.0, "6": 100 / 3, "9": 200 / 3})
    assert strict["sdr_rule"].startswith("d < t")
    assert main(["score", p, g, "--mm-per-px", "0.1"]) == 0  # 0.3, 0.6, 2.5 mm
    text = capsys.readouterr().out
    assert "<= 2 mm: 66.67 %" in text and "<= 2.5 mm: 100.00 %" in text
    assert "thresholds: default for unit mm" in text and "ties within 1e-09 relative count" in text
    assert main(["score", p, g, "--thresholds", "0", "--json"]) == 1
    assert "--thresholds must be > 0" in capsys.readouterr().err


def test_score_help_states_the_tie_rules(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("Zhu et al.", "Payer et al.", "landmarker", "d < t", "--protocol zhu Zhu et al.",
                   "--image-size", "--sdr-strict"):
        assert needle in text
