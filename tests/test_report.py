"""xlm_core.report on hand-made results folders (no training): known numbers in, known tables out.

``write_fake_study`` is shared with tests/test_book.py (a hand-made study the book can be built from).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlm_core import XLMError, report

DATASETS = ("head", "hand", "chest")
UNITS = {"head": "mm", "hand": "mm", "chest": "px", "ceph": "px", "spine": "px"}
THRESHOLDS = {"head": [2.0, 2.5, 3.0, 4.0], "hand": [2.0, 4.0, 10.0], "chest": [3.0, 6.0, 9.0],
              "ceph": [14.0, 17.5, 21.0, 28.0], "spine": [10.0, 20.0, 40.0]}


def _score(mre: float, dataset: str, protocol: str, n_images: int = 4) -> dict:
    return {
        "n_images": n_images,
        "n_landmarks": 3,
        "mre": mre,
        "mre_std": 0.1,
        "unit": UNITS[dataset],
        "protocol": protocol,
        "sdr": {f"{t:g}": min(100.0, 50.0 + 10 * t - 5 * mre) for t in THRESHOLDS[dataset]},
        "per_landmark_mre": [mre * 0.9, mre, mre * 1.1],
        "mean_shape_mre": 10.0,
    }


def transfer_chains(target: str) -> list[list[str]]:
    a, b = [d for d in DATASETS if d != target]
    return [["imagenet"], ["imagenet", a], ["imagenet", b], ["imagenet", a, b], ["imagenet", b, a]]


def fake_transfer_mre(target: str, chain: list[str], seed: int) -> float:
    """Known numbers: base 2.0 (+1 for chest), +0.1 per extra stage, +0.2 for seed 1, -0.3 for a
    matched control (every stage after the start on the target itself), +1 from scratch."""
    control = len(chain) > 1 and all(c == target for c in chain[1:])
    return (2.0 + (target == "chest") + 0.1 * (len(chain) - 1) + 0.2 * seed - 0.3 * control
            + 1.0 * (chain[0] == "scratch"))


def fake_backbone_mre(arch: str, fold: int) -> float:
    return {"unet": 1.0, "unetplusplus": 0.5}[arch] + 0.1 * fold


def _write_run(results: Path, run: dict, mre: float, heldout: bool, n_images: int = 4,
               image_ids: list[str] | None = None) -> None:
    out = results / "runs" / run["run_id"]
    out.mkdir(parents=True)
    ds = run["dataset"]
    metrics = {
        "config": run["config"],
        "dataset": ds,
        "data_source": "synthetic",
        "unit": UNITS[ds],
        "scale": "test scale",
        "wrist_pair": [2, 6] if ds == "hand" else None,
        "thresholds": THRESHOLDS[ds],
        "mre": mre,
        "mean_shape_mre": 10.0,
        "test": {p: _score(mre, ds, p) for p in ("clean", "zhu")},
        "heldout": {p: _score(mre, ds, p) for p in ("clean", "zhu")} if heldout else None,
        "transfer": run.pop("_transfer", None),
        "test_size": [64, 64],
        "epochs_run": 2,
        "best_epoch": 1,
        "train_seconds": 1.5,
    }
    ids = image_ids or [f"{i:03d}" for i in range(n_images)]
    if image_ids is not None:  # a cross-validated run: the fold it scored
        metrics["split"] = {"test_ids": ids}
        for protocol in ("clean", "zhu"):
            metrics["test"][protocol]["n_images"] = len(ids)
    (out / "metrics.json").write_text(json.dumps(metrics))
    # per-image errors: mean over the 3 landmarks is exactly mre for every image (+ a small
    # image-dependent wobble that cancels over the images)
    rows = []
    for i, image_id in enumerate(ids):
        wobble = 0.05 * (i - (len(ids) - 1) / 2)
        for lm in range(1, 4):
            for protocol in ("clean", "zhu"):
                rows.append(
                    {"image_id": image_id, "landmark": lm, "x": 1.0, "y": 2.0,
                     "protocol": protocol, "error": mre + wobble}
                )
    pd.DataFrame(rows).to_csv(out / "predictions.csv", index=False)


def write_fake_study(results: Path, seeds=(0, 1), folds: int = 2, missing: str | None = None,
                     encoder_weights: str = "imagenet", controls: bool = False, scratch: bool = False) -> Path:
    """A hand-made ``results/<study>`` with backbone and transfer runs and known metrics.

    ``missing``: a run_id written into study.json without its metrics.json. ``encoder_weights``:
    what the first stage of every chain records (``none``: the runs started from scratch). The
    later stages record ``imagenet`` whatever it is (as a profile's intent would), and a
    ``transfer`` report whose source is the stage before: only the first stage tells the truth.
    ``controls``: also the matched controls ``imagenet>T>T`` and ``imagenet>T>T>T`` (written with
    ``stages``, as the study runner writes every run). ``scratch``: also ``scratch``,
    ``scratch>T`` and ``scratch>T>T`` (first stage without ImageNet weights).
    """
    runs = []
    for arch in ("unet", "unetplusplus"):
        for fold in range(folds):
            cfg = {"dataset": "hand", "root": str(results / "data" / "hand"), "arch": arch,
                   "encoder": "vgg19", "fold": fold, "folds": folds, "seed": 0}
            runs.append({"run_id": f"bb-{arch}-f{fold}", "kind": "backbone", "dataset": "hand",
                         "arch": arch, "encoder": "vgg19", "fold": fold, "seed": 0, "chain": ["imagenet"],
                         "depends_on": [], "config": cfg, "_mre": fake_backbone_mre(arch, fold)})
    seen = set()
    for seed in seeds:
        for target in DATASETS:
            chains = transfer_chains(target) + ([["imagenet", target], ["imagenet", target, target]]
                                                if controls else [])
            chains += [["scratch"], ["scratch", target], ["scratch", target, target]] if scratch else []
            for chain in chains:
                key = (target, tuple(chain), seed)
                if key in seen:
                    continue
                seen.add(key)
                rid = f"tr-{target}-{'-'.join(chain)}-s{seed}"
                cfg = {"dataset": target, "root": str(results / "data" / target), "arch": "unetplusplus",
                       "encoder": "vgg19", "seed": seed,
                       "encoder_weights": ("none" if chain[0] == "scratch" else encoder_weights)
                       if len(chain) == 1 else "imagenet"}
                parent = f"tr-{chain[-1]}-{'-'.join(chain[:-1])}-s{seed}" if len(chain) > 1 else None
                transfer = ({"source": str(results / "runs" / parent / "checkpoint.pt"), "encoder_matched": 1,
                             "encoder_expected": 1} if parent else None)
                # the chain is written with the run's own dataset at the end for half the runs:
                # the reader must accept both forms
                written = chain + [target] if seed == 0 else chain
                control = len(chain) > 1 and all(c == target for c in chain[1:])
                extra = {"stages": chain + [target]} if control else {}
                if control:
                    written = chain
                runs.append({"run_id": rid, "kind": "transfer", "dataset": target, "arch": "unetplusplus",
                             "encoder": "vgg19", "fold": None, "seed": seed, "chain": written, **extra,
                             "depends_on": [parent] if parent else [], "config": cfg,
                             "_transfer": transfer, "_mre": fake_transfer_mre(target, chain, seed)})
    for run in runs:
        mre = run.pop("_mre")
        if run["run_id"] != missing:
            _write_run(results, run, mre, heldout=run["kind"] == "backbone")
    study = {"study": "fake", "profile": "ci", "profile_note": "hand-made test results",
             "data_source": "synthetic", "runs": runs}
    results.mkdir(parents=True, exist_ok=True)
    (results / "study.json").write_text(json.dumps(study))
    return results


@pytest.fixture
def fake_results(tmp_path: Path) -> Path:
    return write_fake_study(tmp_path / "results" / "fake")


@pytest.fixture
def fake_study(fake_results: Path) -> report.StudyInfo:
    """The fake study as the notebooks hold it: read once, handed to every table."""
    return report.load_study(fake_results)


def test_backbone_table_means_and_stds_over_folds(fake_study: report.StudyInfo) -> None:
    t1 = report.backbone_table(fake_study)
    assert list(t1["arch"]) == ["unet", "unetplusplus", report.MEAN_SHAPE]
    unet = t1.iloc[0]
    folds = [fake_backbone_mre("unet", f) for f in (0, 1)]
    assert unet["mre"] == pytest.approx(np.mean(folds))
    assert unet["mre_std"] == pytest.approx(np.std(folds, ddof=1))
    assert unet["n_folds"] == 2 and unet["n_missing"] == 0
    assert unet["unit"] == "mm" and unet["protocol"] == "clean"
    assert unet["evaluated_on"] == "held-out CV fold"
    assert unet["thresholds"] == "2;4;10"
    assert unet["wrist_pair"] == "2-6 (1-based)"
    assert unet["profile"] == "ci" and unet["data_source"] == "synthetic"
    assert unet["sdr_t1"] == pytest.approx(np.mean([50 + 20 - 5 * m for m in folds]))
    baseline = t1.iloc[-1]
    assert baseline["mre"] == pytest.approx(10.0)
    assert math.isnan(t1.iloc[0]["sdr_t4"])  # hand has three thresholds


def test_missing_run_is_counted_not_dropped(tmp_path: Path) -> None:
    results = write_fake_study(tmp_path / "r", missing="bb-unet-f1")
    t1 = report.backbone_table(report.load_study(results))
    unet = t1[t1["arch"] == "unet"].iloc[0]
    assert unet["n_folds"] == 1 and unet["n_missing"] == 1
    assert unet["mre"] == pytest.approx(fake_backbone_mre("unet", 0))
    assert unet["mre_std"] == 0.0


def test_transfer_table_has_every_target_and_chain(fake_study: report.StudyInfo) -> None:
    t2 = report.transfer_table(fake_study)
    models = t2[t2["chain"] != report.MEAN_SHAPE]
    assert len(models) == 15
    assert (t2["chain"] == report.MEAN_SHAPE).sum() == 3
    assert set(models["n_seeds"]) == {2}
    row = t2[(t2["target"] == "head") & (t2["chain"] == "imagenet>hand>chest")].iloc[0]
    expected = [fake_transfer_mre("head", ["imagenet", "hand", "chest"], s) for s in (0, 1)]
    assert row["mre"] == pytest.approx(np.mean(expected))
    assert row["mre_std"] == pytest.approx(np.std(expected, ddof=1))
    assert row["unit"] == "mm" and row["thresholds"] == "2;2.5;3;4"
    chest = t2[t2["target"] == "chest"]
    assert set(chest["unit"]) == {"px"}
    # chains ordered by length within a target, imagenet first
    assert next(iter(chest["chain"])) == "imagenet"
    for col in report.STATS_COLUMNS:
        assert col in t2


def test_zhu_protocol_is_reported_separately(fake_study: report.StudyInfo) -> None:
    t2 = report.transfer_table(fake_study, protocol="zhu")
    assert set(t2["protocol"]) == {"zhu"}
    with pytest.raises(XLMError, match="unknown protocol"):
        report.transfer_table(fake_study, protocol="mixed")


def test_paired_statistics_fill_the_transfer_table(fake_study: report.StudyInfo) -> None:
    t2 = report.transfer_table(fake_study)
    row = t2[(t2["target"] == "hand") & (t2["chain"] == "imagenet>head")].iloc[0]
    # every image is worse by exactly 0.1 (one extra stage) in the fake results
    assert row["delta_mre"] == pytest.approx(0.1, abs=1e-9)
    assert row["p_holm"] >= row["p_value"]


def test_sota_table_never_mixes_published_and_ours(fake_study: report.StudyInfo) -> None:
    t3 = report.sota_table(fake_study)
    published = t3[t3["source"] == report.PUBLISHED_LABEL]
    ours = t3[t3["source"] != report.PUBLISHED_LABEL]
    assert len(published) == 12  # rows of the paper's Table 3
    assert published["ours_mre"].isna().all()
    assert ours["published_mre"].isna().all() and ours["published_sdr_t1"].isna().all()
    assert set(ours["protocol"]) == {"clean", "zhu"}
    assert len(ours) == 6
    gu2net = published[(published["method"] == "Zhu et al. 2021 (GU2Net)") & (published["dataset"] == "chest")]
    assert gu2net["published_mre"].iloc[0] == pytest.approx(5.57)
    assert all("synthetic" in s for s in ours["source"])


def test_literature_carries_all_three_paper_tables() -> None:
    lit = report.load_literature()
    assert sorted(lit["table"].value_counts().items()) == [(1, 8), (2, 15), (3, 12)]
    assert lit["source"].str.contains("Di Via et al. 2024").all()
    vgg = lit[(lit["table"] == 1) & (lit["arch"] == "unetplusplus") & (lit["encoder"] == "vgg19")]
    assert vgg["mre"].iloc[0] == pytest.approx(0.50)


def test_write_table_roundtrip(fake_study: report.StudyInfo, tmp_path: Path) -> None:
    t1 = report.backbone_table(fake_study)
    path = report.write_table(t1, tmp_path / "out" / "table1_backbones.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == list(t1.columns)
    assert back["mre"].iloc[0] == pytest.approx(t1["mre"].iloc[0])


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(XLMError, match="study.json: not found"):
        report.load_study(tmp_path)
    (tmp_path / "study.json").write_text("{not json")
    with pytest.raises(XLMError, match="study.json: not valid JSON"):
        report.load_study(tmp_path)
    (tmp_path / "study.json").write_text(json.dumps({"runs": [{"kind": "transfer"}]}))
    with pytest.raises(XLMError, match="run_id"):
        report.load_study(tmp_path)
    results = write_fake_study(tmp_path / "r")
    (results / "runs" / "bb-unet-f0" / "metrics.json").write_text(json.dumps({"mre": 1}))
    with pytest.raises(XLMError, match="bb-unet-f0/metrics.json: missing key 'test'"):
        report.backbone_table(report.load_study(results))


def test_the_study_carries_its_recorded_settings(fake_study: report.StudyInfo) -> None:
    """study.json is read once (load_study): its settings ({} when absent or not a mapping) and
    the ablation's grid (None when absent) come with the loaded study."""
    assert fake_study.settings == {} and fake_study.ablation_runs is None
    path = fake_study.results_dir / "study.json"
    doc = json.loads(path.read_text())
    settings = {"transfer": {"targets": ["head"]}, "human_limit_csv_dir": "csv"}
    path.write_text(json.dumps({**doc, "settings": settings, "ablation_runs": []}))
    again = report.load_study(fake_study.results_dir)
    assert again.settings == settings and again.ablation_runs == []
    path.write_text(json.dumps({**doc, "settings": ["not", "a", "mapping"]}))
    assert report.load_study(fake_study.results_dir).settings == {}


def test_chain_before_accepts_both_forms() -> None:
    assert report.chain_before({"dataset": "head", "chain": ["imagenet", "hand", "head"]}) == ["imagenet", "hand"]
    assert report.chain_before({"dataset": "head", "chain": ["imagenet", "hand"]}) == ["imagenet", "hand"]
    assert report.chain_before({"dataset": "head"}) == ["imagenet"]
    # study.json's stages decide: a matched control repeats its target
    control = {"dataset": "head", "chain": ["imagenet", "head"], "stages": ["imagenet", "head", "head"]}
    assert report.chain_before(control) == ["imagenet", "head"]


def test_format_and_display(fake_study: report.StudyInfo) -> None:
    assert report.format_mean_std(1.234, 0.056) == "1.23 ± 0.06"
    assert report.format_mean_std(float("nan"), 0.1) == report.DASH
    assert report.format_mean_std(2.0, float("nan")) == "2.00"
    shown = report.display_table(report.backbone_table(fake_study), ["arch", "encoder"])
    assert list(shown.columns[:3]) == ["arch", "encoder", "MRE (mm)"]
    assert "SDR 10 mm (%)" in shown.columns and "n folds" in shown.columns
    assert list(shown["n folds"]) == ["2", "2", "2"]  # integers as integers, never "2.0"


def test_show_table_no_index_dash_footnote_scrolls() -> None:
    table = pd.DataFrame({"n seeds": [2.0, float("nan")], "MRE (mm)": [1.23456, float("nan")],
                          "who": ["a", None]}, index=[7, 8])
    shown = report.show_table(table, notes=["a note"])
    html = shown._repr_html_()
    assert "overflow-x:auto" in html and "<th>n seeds</th>" in html
    assert "<td>2</td>" in html and "2.0" not in html and "<td>1.23</td>" in html
    assert "NaN" not in html and "nan" not in html and "None" not in html
    assert html.count(report.DASH) >= 3 and report.DASH_NOTE in html and "a note" in html
    assert "<td>7</td>" not in html  # no index column
    assert "NaN" not in repr(shown)
    # no missing value, no footnote about it
    assert report.DASH_NOTE not in report.show_table(pd.DataFrame({"x": [1]}))._repr_html_()


def test_display_table_paired_columns_format_p(fake_study: report.StudyInfo) -> None:
    t2 = report.transfer_table(fake_study)
    head = t2[t2["target"] == "head"]
    shown = report.display_table(head, ["chain"], sdr_std=False)
    assert {"Δ MRE (mm)", "95 % CI (mm)", "Holm p", "n seeds"} <= set(shown.columns)
    assert list(shown["n seeds"]) == ["2"] * len(head)
    alone = shown[shown["chain"] == "imagenet"].iloc[0]
    assert alone["Holm p"] == report.DASH and alone["Δ MRE (mm)"] == report.DASH
    for text in shown["Holm p"]:
        assert text == report.DASH or text == "< 0.001" or float(text) >= 0.001
    html = report.show_table(shown)._repr_html_()
    assert "NaN" not in html and not re.search(r"\de[+-]\d", html)


def test_summary_names_profile_and_warns_synthetic(fake_study: report.StudyInfo) -> None:
    text = report.summary_markdown(fake_study)
    assert "profile **ci**" in text and "synthetic" in text
    assert "{warning}" in text
    # in the fake numbers ImageNet alone is best for every target
    assert text.count("no chain through other x-ray datasets beat `imagenet` alone") == 3


def test_study_label_marks_synthetic(fake_results: Path) -> None:
    label = report.load_study(fake_results).label("zhu", "test split")
    assert "profile: ci" in label and "zhu protocol" in label and "SYNTHETIC" in label


def test_scratch_runs_are_named_scratch_everywhere(tmp_path: Path) -> None:
    """First stages without ImageNet weights: every label says scratch, though the later
    stages' configs (and the profile's chain tokens) say imagenet."""
    results = write_fake_study(tmp_path / "results" / "fake", encoder_weights="none")
    study = report.load_study(results)
    runs = report.collect_runs(study)
    transfer = runs[runs["kind"] == "transfer"]
    assert set(transfer["start"]) == {"scratch"}
    assert all(c.split(">")[0] == "scratch" for c in transfer["chain"])
    assert "imagenet" in set(transfer["profile_chain"])
    t2 = report.transfer_table(study)
    chains = set(t2["chain"]) - {report.MEAN_SHAPE}
    assert chains and not any("imagenet" in c for c in chains)
    assert "scratch>hand>chest" in chains
    # paired stats still run against the single-stage chain
    row = t2[(t2["target"] == "head") & (t2["chain"] == "scratch>hand")].iloc[0]
    assert math.isfinite(row["p_holm"])
    verdicts = report.transfer_verdicts(t2)
    assert verdicts and all("imagenet" not in v for v in verdicts)
    assert all("vs scratch alone" in v or "vs the runner-up scratch" in v for v in verdicts)
    summary = report.summary_markdown(study)
    assert "imagenet" not in summary.lower().replace("no imagenet weights", "")
    assert "`scratch` alone" in summary
    t3 = report.sota_table(study)
    ours = t3[t3["ours_mre"].notna()]
    assert len(ours) and all("scratch>" in m for m in ours["method"])
    # the profile's name still finds the runs
    assert set(report.chain_runs(study, "imagenet")) == {"head", "hand", "chest"}
    assert report.chain_runs(study, "imagenet") == report.chain_runs(study, "scratch")


def test_imagenet_start_kept_when_weights_were_loaded(fake_study: report.StudyInfo) -> None:
    runs = report.collect_runs(fake_study)
    assert set(runs.loc[runs["kind"] == "transfer", "start"]) == {"imagenet"}
    assert "imagenet>hand>chest" in set(report.transfer_table(fake_study)["chain"])


def test_start_label() -> None:
    assert report.start_label("imagenet") == "imagenet"
    assert report.start_label("none") == "scratch" and report.start_label(None) == "scratch"
    assert report.start_label("/w/vgg19-dcbb9e9d.pth") == "vgg19-dcbb9e9d.pth"


def test_sota_side_by_side_same_protocol_and_unit_only(fake_study: report.StudyInfo) -> None:
    t3 = report.sota_table(fake_study)
    # hand: published mm, ours zhu mm -> beside; clean row left out with a reason
    hand, notes = report.sota_side_by_side(t3, "hand")
    assert "MRE (mm)" in hand.columns and hand["figures"].str.startswith("this study").sum() == 1
    assert any("clean protocol" in n for n in notes)
    # chest: published px of the 512x512 grid, ours px of a 64x64 grid -> never beside
    chest, notes = report.sota_side_by_side(t3, "chest")
    assert "MRE (px, 512x512 grid)" in chest.columns
    assert not chest["figures"].str.startswith("this study").any()
    assert any("64x64" in n and "512x512" in n for n in notes)
    assert "NaN" not in chest.to_string() and "nan" not in chest.to_string()


def test_dataset_sizes_come_from_the_runs(fake_study: report.StudyInfo) -> None:
    """The datasets table shows the grids the runs recorded, not the loaders' paper defaults."""
    sizes = report.run_sizes(fake_study)
    assert sizes["head"]["test_hw"] == "64x64" and sizes["hand"]["wrist_pair"] == "2, 6"
    counts = pd.DataFrame([
        {"dataset": "hand", "data_source": "synthetic", "n_images": 8, "n_landmarks": 37, "n_train": 5,
         "n_test": 3, "unit": "mm", "scale": "paper scale", "thresholds": "2;4;10",
         "train_size_hw": "512x512", "test_size_hw": "512x368"},
        {"dataset": "other", "data_source": "real", "n_images": 4, "n_landmarks": 3, "n_train": 2,
         "n_test": 2, "unit": "px", "scale": "", "thresholds": "3;6", "train_size_hw": "512x512",
         "test_size_hw": "512x512"},
    ])
    shown, notes = report.datasets_display(counts, sizes)
    text = shown.to_string()
    assert "512" not in text  # the loaders' defaults never reach the page
    hand = shown.iloc[0]
    assert hand["tested at (H x W px)"] == "64x64" and hand["wrist pair (1-based)"] == "2, 6 (clean)"
    assert shown.iloc[1]["trained at (H x W px)"] == report.DASH
    assert notes == ["hand: test scale"]  # the scale the runs recorded, not the loader's


def test_readable_columns_put_units_in_headers() -> None:
    table = pd.DataFrame({"landmark": [1], "mre": [1.0], "mre_std": [0.1], "sdr_2.5": [90.0],
                          "n_images": [4], "wrist_pair": ["2-6"]})
    shown = report.readable_columns(table, "mm")
    assert list(shown.columns) == ["landmark (1-based)", "MRE (mm)", "MRE std (mm)", "SDR 2.5 mm (%)",
                                   "n images", "wrist pair (1-based)"]


def test_protocol_display_names_the_grid_and_flags_coarse_pixels() -> None:
    rows = pd.DataFrame([
        {"decoding": "argmax", "protocol": "clean", "wrist_pair": None, "unit": "mm",
         "measured_on": "original image", "grid_step": float("nan"), "mre": 1.0, "mre_std": 0.1,
         "mre_change_pct": 0.0, "sdr_2": 50.0, "sdr_2.5": 60.0, "sdr_3": 70.0, "sdr_4": 80.0},
        {"decoding": "argmax", "protocol": "zhu", "wrist_pair": None, "unit": "mm",
         "measured_on": "64x52 grid", "grid_step": 3.75, "mre": 2.0, "mre_std": 0.1,
         "mre_change_pct": 100.0, "sdr_2": 44.41, "sdr_2.5": 44.41, "sdr_3": 44.41, "sdr_4": 80.0},
    ])
    shown, notes = report.protocol_display(rows)
    assert list(shown["measured on"]) == ["original image", "64x52 grid"]
    assert list(shown["one grid px (mm)"]) == [report.DASH, "3.750"]
    coarse = [n for n in notes if "coarser" in n]
    assert len(coarse) == 1 and coarse[0].startswith("zhu: one grid pixel is 3.75 mm")
    assert "2, 2.5, 3 mm" in coarse[0]


def test_transfer_report_shows_no_folder_of_the_build_machine() -> None:
    table = report.transfer_report_table({"transfer": {"source": "/home/u/results/demo/runs/ab12/checkpoint.pt",
                                                       "n_landmarks": 19}})
    assert dict(zip(table["item"], table["value"], strict=True)) == {"n_landmarks": 19,
                                                                    "source": "runs/ab12/checkpoint.pt"}
    weights = report.transfer_report_table({"config": {"encoder_weights": "/data/w/vgg19-dcbb9e9d.pth"}})
    assert weights["value"].iloc[0] == "no init checkpoint (encoder weights: vgg19-dcbb9e9d.pth)"


def test_questions_compare_starts_lengths_and_other_xrays_on_paired_images(tmp_path: Path) -> None:
    """With ImageNet and scratch chains and both controls, each question's comparison has the
    known difference of the fake runs (scratch +1, a control -0.3, a stage +0.1)."""
    study = report.load_study(write_fake_study(tmp_path / "results" / "fake", controls=True, scratch=True))
    t2 = report.transfer_table(study)
    q = report.questions_table(t2, study)
    head = q[q["target"] == "head"].set_index(["chain", "reference"])
    expected = {
        ("imagenet", "scratch"): -1.0,                           # what ImageNet buys, one stage
        ("imagenet>head>head", "scratch>head>head"): -1.0,       # ... at the chains' length
        ("imagenet>hand", "imagenet>head"): 0.3,                 # other x-rays vs the matched control
        ("imagenet>chest", "imagenet>head"): 0.3,
        ("imagenet>hand>chest", "imagenet>head>head"): 0.3,
        ("imagenet>chest>hand", "imagenet>head>head"): 0.3,
        ("imagenet>head>head", "imagenet"): -0.1,                # longer training, from ImageNet
        ("scratch>head>head", "scratch"): -0.1,                  # ... and from scratch
    }
    assert sorted(head.index) == sorted(expected)
    for key, delta in expected.items():
        assert head.loc[key, "delta_mre"] == pytest.approx(delta, abs=1e-9), key
        assert head.loc[key, "mre"] - head.loc[key, "reference_mre"] == pytest.approx(delta, abs=1e-9)
        assert head.loc[key, "n_paired_images"] == 4
        assert head.loc[key, "p_holm"] >= head.loc[key, "p_value"]
    assert set(q["question"]) == {"what ImageNet buys", "what other x-rays buy after ImageNet",
                                  "what longer training buys"}
    # each chain of Table 2 is compared with the single stage of its own start
    row = t2[(t2["target"] == "head") & (t2["chain"] == "scratch>head>head")].iloc[0]
    assert row["delta_mre"] == pytest.approx(-0.1, abs=1e-9)
    row = t2[(t2["target"] == "head") & (t2["chain"] == "imagenet>hand")].iloc[0]
    assert row["delta_mre"] == pytest.approx(0.1, abs=1e-9)
    text = report.questions_markdown(q)
    assert "head: imagenet vs scratch changes MRE by -1.00 mm" in text
    assert "**What ImageNet buys**" in text
    shown = report.questions_display(q[q["target"] == "head"])
    assert list(shown.columns)[:4] == ["question", "chain", "vs", "Δ MRE"]
    assert shown.loc[0, "question"] == "ImageNet"
    assert "-1.00" in set(shown["Δ MRE"])


def test_questions_without_scratch_chains_keep_what_ran(fake_study: report.StudyInfo) -> None:
    q = report.questions_table(report.transfer_table(fake_study), fake_study)
    assert len(q) == 0  # no scratch chains, no controls: nothing to compare
    assert "No comparison" in report.questions_markdown(q)
