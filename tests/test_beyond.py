"""Evidence beyond the paper: verdicts, Holm per target, persisted grid predictions, the
protocol / per-landmark tables of a study, the human limit, and the figures. Hand-made results
folders (tests/test_report.py's ``write_fake_study``), no training."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from xlm_core import XLMError, report
from xlm_core.evaluation import SplitPredictions, write_predictions
from xlm_core.geometry import from_grid
from xlm_core.metrics import default_scale
from xlm_core.report import analysis, plots, stats

sys.path.insert(0, str(Path(__file__).parent))
from test_report import write_fake_study

HEAD_SHAPE = 19


# --------------------------------------------------------------------------- verdicts


def test_verdict_sentence_wording_from_numbers() -> None:
    text = report.verdict_sentence("head", "imagenet>chest", -0.05, -0.12, 0.02, 0.41, "mm")
    assert text == ("head: imagenet>chest vs imagenet alone changes MRE by -0.05 mm (95 % CI -0.12 to 0.02, "
                    "Holm p = 0.41): no evidence of a difference")
    lower = report.verdict_sentence("hand", "imagenet>head", -0.3, -0.5, -0.1, 0.001, "mm")
    assert lower.endswith("evidence that it lowers the error") and "Holm p = 0.001" in lower
    higher = report.verdict_sentence("chest", "imagenet>hand", 1.5, 0.4, 2.5, 0.0001, "px")
    assert "+1.50 px" in higher and "Holm p < 0.001" in higher
    assert higher.endswith("evidence that it raises the error")
    # exactly at alpha: not significant
    assert report.verdict_sentence("head", "c", -1, -2, -0.5, 0.05, "mm").endswith("no evidence of a difference")
    missing = report.verdict_sentence("head", "imagenet>hand", math.nan, math.nan, math.nan, math.nan, "mm")
    assert "no paired comparison" in missing


def test_holm_runs_per_target_and_verdicts_come_from_table(tmp_path: Path) -> None:
    study = report.load_study(write_fake_study(tmp_path / "r"))
    t2 = report.transfer_table(study)
    for target, rows in t2.groupby("target"):
        tested = rows.dropna(subset=["p_value"])
        assert len(tested) == 4  # the four chains other than imagenet
        np.testing.assert_allclose(tested["p_holm"], stats.holm(tested["p_value"].to_numpy()))
        assert set(tested["n_paired_images"]) == {4}
        assert (rows[rows["chain"] == "imagenet"]["n_paired_images"] == 0).all()
        assert set(rows["n_images"]) == {4}
    sentences = report.transfer_verdicts(t2)
    assert len(sentences) == 12 + 3  # each chain vs the target alone; per target best vs runner-up
    row = t2[(t2["target"] == "hand") & (t2["chain"] == "imagenet>head")].iloc[0]
    expected = report.verdict_sentence("hand", "imagenet>head", row["delta_mre"], row["ci_low"],
                                       row["ci_high"], row["p_holm"], "mm")
    assert expected in sentences
    assert "+0.10 mm" in expected  # every image 0.1 worse in the fake results
    md = report.verdicts_markdown(t2, study)
    assert md.count("\n- ") == 15 and "profile: ci" in md and "2 seed(s)" in md
    assert "no matched control in this study" in md
    assert "small test sets: head 4 (smallest two-sided p 0.12)" in md  # 4 fake test images


def test_matched_controls_in_table2_and_the_verdicts(tmp_path: Path) -> None:
    """Each chain against the control with as many stages (known numbers: a control is 0.3
    better than every chain of its length), the best row against the runner-up."""
    study = report.load_study(write_fake_study(tmp_path / "r", controls=True))
    t2 = report.transfer_table(study)
    head = t2[t2["target"] == "head"].set_index("chain")
    assert head.loc["imagenet>head", "is_control"] and head.loc["imagenet>head>head", "is_control"]
    assert not head.loc["imagenet>hand", "is_control"]
    assert head.loc["imagenet>hand", "control"] == "imagenet>head"
    assert head.loc["imagenet>hand>chest", "control"] == "imagenet>head>head"
    np.testing.assert_allclose(head.loc["imagenet>hand", "delta_vs_control"], 0.3)
    np.testing.assert_allclose(head.loc["imagenet>chest>hand", "delta_vs_control"], 0.3)
    assert head.loc[["imagenet>hand", "imagenet>chest", "imagenet>hand>chest", "imagenet>chest>hand"],
                    "p_holm_vs_control"].notna().all()
    assert head[["delta_vs_control"]].loc[["imagenet", "imagenet>head", "imagenet>head>head"]].isna().all().all()
    # the best head row is imagenet>head (2.0 + 0.1 - 0.3 = 1.8) against imagenet>head>head (1.9)
    assert head.loc["imagenet>head", "runner_up"] == "imagenet>head>head"
    np.testing.assert_allclose(head.loc["imagenet>head", "delta_vs_runner_up"], -0.1)
    sentences = report.transfer_verdicts(t2)
    assert any(s.startswith("head: imagenet>hand vs its matched control imagenet>head ") and "+0.30 mm" in s
               for s in sentences)
    assert any(s.startswith("head: the best, imagenet>head, vs the runner-up imagenet>head>head") for s in sentences)
    md = report.verdicts_markdown(t2, study)
    assert "against its matched control" in md and "no matched control" not in md
    shown = report.display_table(t2[t2["target"] == "head"], ["chain"], sdr_std=False)
    assert "Δ vs control (mm)" in shown and "Holm p vs control" in shown
    # the summary says when a control, not a chain, gave the lowest error
    summary = report.summary_markdown(study)
    assert "best `imagenet>head` 1.90 mm" in summary  # 1.8 and 2.0 over the two seeds and "matched control `imagenet>head`" in summary


def test_table2_csv_carries_the_paired_columns(tmp_path: Path) -> None:
    results = write_fake_study(tmp_path / "r")
    path = report.write_table(report.transfer_table(report.load_study(results)), results / "table2_transfer.csv")
    back = pd.read_csv(path)
    for col in ("n_seeds", "delta_mre", "ci_low", "ci_high", "p_value", "p_holm"):
        assert col in back.columns
    chains = back[~back["chain"].isin(["imagenet", report.MEAN_SHAPE])]
    assert chains[["delta_mre", "ci_low", "ci_high", "p_value", "p_holm"]].notna().all().all()


# --------------------------------------------------------------------------- persisted grids


def _split(dataset: str, n: int = 3, n_landmarks: int = 6, seed: int = 0) -> SplitPredictions:
    rng = np.random.default_rng(seed)
    image_hws = [(200 + 10 * i, 160) for i in range(n)]
    grid_hw = (32, 24)
    sub = rng.uniform(2, 20, size=(n, n_landmarks, 2))
    arg = np.rint(sub)
    gt = np.stack([from_grid(s + rng.normal(0, 0.7, s.shape), hw, grid_hw) for s, hw in zip(sub, image_hws)])
    pred_px = np.stack([from_grid(s, hw, grid_hw) for s, hw in zip(sub, image_hws)])
    return SplitPredictions(ids=[f"{dataset}{i:02d}" for i in range(n)], image_hws=image_hws,
                            grid_hw=grid_hw, grid_subpixel=sub, grid_argmax=arg, pred_px=pred_px, gt_px=gt)


def _lset(dataset: str):
    return SimpleNamespace(name=dataset, scale=default_scale(dataset),
                           thresholds=analysis.DEFAULT_THRESHOLDS[dataset])


def test_grid_predictions_round_trip_and_protocol_table(tmp_path: Path) -> None:
    test, held = _split("hand", seed=1), _split("hand", n=2, seed=2)
    held.ids = ["h0", "h1"]
    write_predictions(tmp_path / "predictions.csv", [(test, "test"), (held, "heldout")], _lset("hand"))
    assert (tmp_path / "predictions_grid.npz").is_file()
    back = analysis.load_grid_predictions(tmp_path, "test")
    assert back["dataset"] == "hand" and back["ids"] == test.ids
    assert back["grid_hw"] == (32, 24) and back["image_hws"] == test.image_hws
    np.testing.assert_allclose(back["grid_subpixel"], test.grid_subpixel, atol=1e-5)
    np.testing.assert_array_equal(back["grid_argmax"], test.grid_argmax)
    np.testing.assert_array_equal(back["gt_px"], test.gt_px)
    assert back["errors_zhu"].shape == (3, 6)
    assert analysis.load_grid_predictions(tmp_path, "heldout")["ids"] == ["h0", "h1"]
    with pytest.raises(XLMError, match="no split 'val'"):
        analysis.load_grid_predictions(tmp_path, "val")
    # the persisted grids give the same table as the arrays themselves (float32 storage)
    direct = analysis.protocol_table(test.gt_px, test.image_hws, "hand", grid_argmax=test.grid_argmax,
                                     grid_subpixel=test.grid_subpixel, grid_hw=test.grid_hw)
    from_file = analysis.run_protocol_table(tmp_path)
    assert len(from_file) == 8  # 2 decodings x 2 protocols x 2 wrist pairs
    np.testing.assert_allclose(from_file["mre"], direct["mre"], rtol=1e-5)
    # the zhu errors stored are the zhu protocol's (Zhu's pair), as the table's argmax/zhu/1,5 row
    zhu_row = from_file[(from_file["decoding"] == "argmax") & (from_file["protocol"] == "zhu")
                        & (from_file["wrist_pair"] == "1,5")]
    assert back["errors_zhu"].mean() == pytest.approx(zhu_row["mre"].iloc[0])


def test_protocol_table_uses_the_runs_own_scale(tmp_path: Path) -> None:
    """A synthetic head at 1 mm per pixel: clean rows in that unit (as metrics.json), head zhu
    rows with that spacing x H / grid_H (not the ISBI 0.1 mm)."""
    from xlm_core.datasets.base import Scale
    from xlm_core.metrics import errors_clean, errors_zhu

    pred = _split("head", n=3, n_landmarks=4, seed=3)
    lset = SimpleNamespace(name="head", scale=Scale(unit="mm", mm_per_px=1.0), thresholds=(2.0, 4.0))
    write_predictions(tmp_path / "predictions.csv", [(pred, "test")], lset)
    assert analysis.load_grid_predictions(tmp_path)["scale"] == lset.scale
    table = analysis.run_protocol_table(tmp_path, thresholds=(2.0, 4.0)).set_index(["decoding", "protocol"])
    clean = errors_clean(pred.pred_px, pred.gt_px, lset.scale)
    assert table.loc[("subpixel", "clean"), "mre"] == pytest.approx(clean.mean(), rel=1e-5)
    zhu, _ = errors_zhu(pred.grid_argmax, pred.gt_px, pred.image_hws, pred.grid_hw, "head")
    assert table.loc[("argmax", "zhu"), "mre"] == pytest.approx(10.0 * zhu.mean())


def test_grid_predictions_bad_file_named(tmp_path: Path) -> None:
    with pytest.raises(XLMError, match="predictions_grid.npz: not found"):
        analysis.load_grid_predictions(tmp_path)
    (tmp_path / "predictions_grid.npz").write_bytes(b"not a zip")
    with pytest.raises(XLMError, match="predictions_grid.npz: not a readable"):
        analysis.load_grid_predictions(tmp_path)


def _write_training_outputs(results: Path, run_id: str, dataset: str, seed: int) -> None:
    """Replace a fake run's predictions with the training format (+ the grid file)."""
    n_landmarks = {"head": 3, "hand": 6, "chest": 6}[dataset]
    pred = _split(dataset, n=4, n_landmarks=n_landmarks, seed=seed)
    pred.ids = [f"{i:03d}" for i in range(4)]
    write_predictions(results / "runs" / run_id / "predictions.csv", [(pred, "test")], _lset(dataset))


@pytest.fixture
def study_with_grids(tmp_path: Path) -> Path:
    results = write_fake_study(tmp_path / "results" / "fake")
    doc = json.loads((results / "study.json").read_text())
    for run in doc["runs"]:
        if run["kind"] == "transfer" and report.chain_before(run) == ["imagenet"]:
            _write_training_outputs(results, run["run_id"], run["dataset"], run["seed"])
    return results


def test_study_protocol_and_per_landmark_tables(study_with_grids: Path) -> None:
    study = report.load_study(study_with_grids)
    table = report.study_protocol_table(study)
    assert list(dict.fromkeys(table["target"])) == ["head", "hand", "chest"]
    assert set(table["n_seeds"]) == {2} and set(table["profile"]) == {"ci"}
    assert (table["target"] == "hand").sum() == 8 and (table["target"] == "head").sum() == 4
    ref = table[(table["target"] == "chest") & (table["decoding"] == "subpixel") & (table["protocol"] == "clean")]
    assert ref["mre_change_pct"].iloc[0] == pytest.approx(0.0)
    # mean over seeds of the per-run tables
    runs = report.chain_runs(study)["chest"]
    per_run = [analysis.run_protocol_table(report.run_dir(study_with_grids, r["run_id"])) for r in runs]
    sub_clean = [t[(t["decoding"] == "subpixel") & (t["protocol"] == "clean")]["mre"].iloc[0] for t in per_run]
    assert ref["mre"].iloc[0] == pytest.approx(np.mean(sub_clean))
    assert ref["mre_std"].iloc[0] == pytest.approx(np.std(sub_clean, ddof=1))

    lm = report.per_landmark_tables(study)
    head = lm[lm["target"] == "head"]
    assert list(head["landmark"]) == [1, 2, 3] and set(head["n_rows"]) == {8}  # 4 images x 2 seeds
    m = report.study_error_matrices(study)["head"]
    assert m["errors"].shape == (8, 3) and m["unit"] == "mm"
    assert head["mre"].to_numpy() == pytest.approx(m["errors"].mean(axis=0))


def test_zhu_paired_stats_from_grid_file(study_with_grids: Path) -> None:
    run = report.chain_runs(report.load_study(study_with_grids))["head"][0]
    series = report.per_image_errors(report.run_dir(study_with_grids, run["run_id"]), "zhu")
    grid = analysis.load_grid_predictions(report.run_dir(study_with_grids, run["run_id"]))
    assert list(series.index) == grid["ids"]
    np.testing.assert_allclose(series.to_numpy(), grid["errors_zhu"].mean(axis=1))



def test_per_image_errors_keep_zero_padded_ids_per_split(tmp_path: Path) -> None:
    # Hamedan ids are "071".."100": read as numbers they would become "71" and miss the split.
    (tmp_path / "predictions.csv").write_text(
        "image_id,landmark,x,y,error,split\n"
        "071,1,0,0,2.0,test\n071,2,0,0,4.0,test\n088,1,0,0,1.0,test\n088,2,0,0,1.0,test\n"
        "004,1,0,0,9.0,heldout\n")
    series = report.per_image_errors(tmp_path, "clean")
    assert series.to_dict() == {"071": 3.0, "088": 1.0}
    assert report.per_image_errors(tmp_path, "clean", split="heldout").to_dict() == {"004": 9.0}


# --------------------------------------------------------------------------- the human limit


def test_find_payer_csv_dir(tmp_path: Path) -> None:
    assert analysis.find_payer_csv_dir(tmp_path / "nowhere") is None
    folder = tmp_path / "repo" / "csvs"
    folder.mkdir(parents=True)
    for name in analysis.PAYER_FILES:
        (folder / name).write_text("")
    assert analysis.find_payer_csv_dir("csvs", repo=tmp_path / "repo") == folder.resolve()
    assert analysis.find_payer_csv_dir(None, repo=tmp_path / "repo") is None  # default ../shared absent


def test_human_limit_for_study_reproduces_isbi(tmp_path: Path, head_root: Path) -> None:
    study = report.load_study(write_fake_study(tmp_path / "r"))
    rows, source = report.human_limit_for_study(study, head_root / "payer_setup")
    assert source == analysis.PAYER_SOURCE and "151-400" in source
    frame = analysis.human_limit_frame(rows, source).set_index("comparison")
    assert round(frame.loc["senior vs mean", "mre"], 3) == 1.012
    assert round(frame.loc["senior vs junior", "mre"], 3) == 2.023
    assert frame.loc["senior vs mean", "n_images"] == 250
    assert [round(frame.loc["junior vs mean", f"sdr_{t}"], 2) for t in ("2", "2.5", "3", "4")] == \
        [86.80, 91.94, 95.18, 98.27]
    assert analysis.human_per_landmark(rows).shape == (HEAD_SHAPE,)
    # models beside the human rows, each labelled with its own data source
    beside = report.models_beside_human(report.transfer_table(study), frame.reset_index(), study)
    models = beside[beside["who"].str.startswith("model")]
    humans = beside[beside["who"].str.startswith("annotators")]
    assert len(models) == 5 and len(humans) == 3
    assert models["source"].str.contains("synthetic phantoms").all()
    assert (humans["source"] == analysis.PAYER_SOURCE).all()


def test_human_limit_absent_is_said_not_raised(tmp_path: Path) -> None:
    study = report.load_study(write_fake_study(tmp_path / "r"))
    rows, source = report.human_limit_for_study(study, tmp_path / "none", repo=tmp_path)
    assert rows is None and "not found" in source and "human_limit_csv_dir" in source


def test_human_limit_from_the_dataset_matches_payer(head_root: Path) -> None:
    """The head loader's senior/junior folders and Payer's CSVs agree on image 001."""
    from xlm_core.report.human_limit import human_limit_from_payer

    from_set = {r["comparison"]: r["mre"] for r in analysis.human_limit_from_dataset(head_root, ids=["001"])}
    setup = head_root / "payer_setup"
    from_csv = {r["comparison"]: r["mre"]
                for r in human_limit_from_payer(setup / "all_senior.csv", setup / "all_junior.csv", ["001"])}
    assert from_set == pytest.approx(from_csv)
    with pytest.raises(XLMError, match="no senior and junior annotations"):
        analysis.human_limit_from_dataset(head_root, ids=["999"])


# --------------------------------------------------------------------------- figures


def test_figures(study_with_grids: Path) -> None:
    study = report.load_study(study_with_grids)
    t2 = report.transfer_table(study)
    fig = plots.plot_paired_deltas(t2, caption="profile: ci")
    assert len(fig.axes) == 3 and fig.axes[0].get_title() == "target: head"
    m = report.study_error_matrices(study)
    fig = plots.plot_landmark_errors({t: v["errors"] for t, v in m.items()}, {t: v["unit"] for t, v in m.items()},
                                     reference={"head": ("annotators", np.ones(3))})
    assert len(fig.axes) == 3
    assert "annotators" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    fig = plots.plot_protocol_spread(report.study_protocol_table(study))
    assert len(fig.axes) == 3
    ex = {"image": np.zeros((8, 6)), "heatmaps": np.random.default_rng(0).random((2, 8, 6)),
          "gt_grid": np.array([[1.0, 1.0], [3.0, 4.0]]), "pred_grid": np.array([[2.0, 1.0], [3.0, 5.0]]),
          "worst": 1}
    fig = plots.plot_worst_gallery([ex, ex], ["a", "b"])
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "a"
