"""xlm_core.report on hand-made results folders (no training): known numbers in, known tables out.

``write_fake_study`` is shared with tests/test_book.py (a hand-made study the book can be built from).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlm_core import XLMError, report

DATASETS = ("head", "hand", "chest")
UNITS = {"head": "mm", "hand": "mm", "chest": "px"}
THRESHOLDS = {"head": [2.0, 2.5, 3.0, 4.0], "hand": [2.0, 4.0, 10.0], "chest": [3.0, 6.0, 9.0]}


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
    """Known numbers: base 2.0 (+1 for chest), +0.1 per extra stage, +0.2 for seed 1."""
    return 2.0 + (target == "chest") + 0.1 * (len(chain) - 1) + 0.2 * seed


def fake_backbone_mre(arch: str, fold: int) -> float:
    return {"unet": 1.0, "unetplusplus": 0.5}[arch] + 0.1 * fold


def _write_run(results: Path, run: dict, mre: float, heldout: bool, n_images: int = 4) -> None:
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
        "transfer": None,
        "epochs_run": 2,
        "best_epoch": 1,
        "train_seconds": 1.5,
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    # per-image errors: mean over the 3 landmarks is exactly mre for every image (+ a small
    # image-dependent wobble that cancels over the images)
    rows = []
    for i in range(n_images):
        wobble = 0.05 * (i - (n_images - 1) / 2)
        for lm in range(1, 4):
            for protocol in ("clean", "zhu"):
                rows.append(
                    {"image_id": f"{i:03d}", "landmark": lm, "x": 1.0, "y": 2.0,
                     "protocol": protocol, "error": mre + wobble}
                )
    pd.DataFrame(rows).to_csv(out / "predictions.csv", index=False)


def write_fake_study(results: Path, seeds=(0, 1), folds: int = 2, missing: str | None = None) -> Path:
    """A hand-made ``results/<study>`` with backbone and transfer runs and known metrics.

    ``missing``: a run_id written into study.json without its metrics.json.
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
            for chain in transfer_chains(target):
                key = (target, tuple(chain), seed)
                if key in seen:
                    continue
                seen.add(key)
                rid = f"tr-{target}-{'-'.join(chain)}-s{seed}"
                cfg = {"dataset": target, "root": str(results / "data" / target), "arch": "unetplusplus",
                       "encoder": "vgg19", "seed": seed}
                # the chain is written with the run's own dataset at the end for half the runs:
                # the reader must accept both forms
                written = chain + [target] if seed == 0 else chain
                runs.append({"run_id": rid, "kind": "transfer", "dataset": target, "arch": "unetplusplus",
                             "encoder": "vgg19", "fold": None, "seed": seed, "chain": written,
                             "depends_on": [], "config": cfg, "_mre": fake_transfer_mre(target, chain, seed)})
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


def test_backbone_table_means_and_stds_over_folds(fake_results: Path) -> None:
    t1 = report.backbone_table(fake_results)
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
    t1 = report.backbone_table(results)
    unet = t1[t1["arch"] == "unet"].iloc[0]
    assert unet["n_folds"] == 1 and unet["n_missing"] == 1
    assert unet["mre"] == pytest.approx(fake_backbone_mre("unet", 0))
    assert unet["mre_std"] == 0.0


def test_transfer_table_has_every_target_and_chain(fake_results: Path) -> None:
    t2 = report.transfer_table(fake_results)
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
    assert list(chest["chain"])[0] == "imagenet"
    for col in report.STATS_COLUMNS:
        assert col in t2


def test_zhu_protocol_is_reported_separately(fake_results: Path) -> None:
    t2 = report.transfer_table(fake_results, protocol="zhu")
    assert set(t2["protocol"]) == {"zhu"}
    with pytest.raises(XLMError, match="unknown protocol"):
        report.transfer_table(fake_results, protocol="mixed")


def test_paired_statistics_when_stats_module_exists(fake_results: Path) -> None:
    stats = pytest.importorskip("xlm_core.stats")
    if not hasattr(stats, "compare_paired"):
        pytest.skip("xlm_core.stats.compare_paired not written yet")
    t2 = report.transfer_table(fake_results)
    row = t2[(t2["target"] == "hand") & (t2["chain"] == "imagenet>head")].iloc[0]
    # every image is worse by exactly 0.1 (one extra stage) in the fake results
    assert row["delta_mre"] == pytest.approx(0.1, abs=1e-9)
    assert row["p_holm"] >= row["p_value"]


def test_sota_table_never_mixes_published_and_ours(fake_results: Path) -> None:
    t3 = report.sota_table(fake_results)
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


def test_write_table_roundtrip(fake_results: Path, tmp_path: Path) -> None:
    t1 = report.backbone_table(fake_results)
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
        report.backbone_table(results)


def test_chain_before_accepts_both_forms() -> None:
    assert report.chain_before({"dataset": "head", "chain": ["imagenet", "hand", "head"]}) == ["imagenet", "hand"]
    assert report.chain_before({"dataset": "head", "chain": ["imagenet", "hand"]}) == ["imagenet", "hand"]
    assert report.chain_before({"dataset": "head"}) == ["imagenet"]


def test_format_and_display(fake_results: Path) -> None:
    assert report.format_mean_std(1.234, 0.056) == "1.23 ± 0.06"
    assert report.format_mean_std(float("nan"), 0.1) == "n/a"
    assert report.format_mean_std(2.0, float("nan")) == "2.00"
    shown = report.display_table(report.backbone_table(fake_results), ["arch", "encoder"])
    assert list(shown.index.names) == ["arch", "encoder"] and shown.columns[0] == "MRE (mm)"
    assert "SDR 10 mm (%)" in shown.columns


def test_summary_names_profile_and_warns_synthetic(fake_results: Path) -> None:
    text = report.summary_markdown(fake_results)
    assert "profile **ci**" in text and "synthetic" in text
    assert "{warning}" in text
    # in the fake numbers ImageNet alone is best for every target
    assert text.count("no chain through other x-ray datasets beat ImageNet alone") == 3


def test_study_label_marks_synthetic(fake_results: Path) -> None:
    label = report.load_study(fake_results).label("zhu", "test split")
    assert "profile: ci" in label and "zhu protocol" in label and "SYNTHETIC" in label
