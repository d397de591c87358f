"""Cumulative point-error curves of the transfer and beyond chapters: every chain's test errors
from the runs' ``predictions.csv``, the chain's start named from the runs' metadata, the human
limit from real ISBI annotations. Hand-made results folders (no training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlm_core import report
from xlm_core.report import plots

sys.path.insert(0, str(Path(__file__).parent))
from test_beyond import _write_training_outputs
from test_report import write_fake_study


def _study(tmp_path: Path, weights: str) -> Path:
    """The fake study with every transfer run in the training format, ``depends_on`` linking
    each stage to the one before (as ``study.plan`` writes it), and the first stages'
    ``encoder_weights`` set to ``weights``."""
    results = write_fake_study(tmp_path / "results" / "fake", encoder_weights=weights)  # what ran
    doc = json.loads((results / "study.json").read_text())
    transfer = [r for r in doc["runs"] if r["kind"] == "transfer"]
    by_key = {(tuple(report.chain_before(r)) + (r["dataset"],), r["seed"]): r for r in transfer}
    for run in transfer:
        before = report.chain_before(run)
        if len(before) == 1:
            run["config"]["encoder_weights"] = weights
        else:
            run["config"]["encoder_weights"] = "none"
            run["depends_on"] = [by_key[(tuple(before), run["seed"])]["run_id"]]
        _write_training_outputs(results, run["run_id"], run["dataset"], run["seed"])
    (results / "study.json").write_text(json.dumps(doc))
    return results


def test_chain_curves_read_every_chain_and_name_the_start(tmp_path: Path) -> None:
    results = _study(tmp_path, "none")
    study = report.load_study(results)
    curves = plots.chain_error_curves(study)
    assert list(curves) == ["head", "hand", "chest"]
    head = curves["head"]
    assert head["alone"] == "scratch" and head["unit"] == "mm"
    assert list(head["curves"]) == ["scratch", "scratch>hand", "scratch>chest", "scratch>hand>chest",
                                    "scratch>chest>hand"]
    assert set(head["seeds"].values()) == {2}
    # the errors are the predictions.csv values of both seeds' runs, test split
    runs = report.chain_runs(study, "imagenet>hand")["head"]
    frames = [pd.read_csv(report.run_dir(results, r["run_id"]) / "predictions.csv") for r in runs]
    expected = np.concatenate([f.sort_values(["image_id", "landmark"])["error"].to_numpy() for f in frames])
    assert np.sort(head["curves"]["scratch>hand"].ravel()) == pytest.approx(np.sort(expected))

    with_weights = plots.chain_error_curves(report.load_study(_study(tmp_path / "b", "imagenet")))
    assert with_weights["chest"]["alone"] == "imagenet"
    assert "imagenet>head>hand" in with_weights["chest"]["curves"]
    assert report.start_label("/w/vgg19-dcbb9e9d.pth") == "vgg19-dcbb9e9d.pth"


def test_cpe_figures(tmp_path: Path) -> None:
    curves = plots.chain_error_curves(report.load_study(_study(tmp_path, "none")))
    human = (np.full((2, 3), 0.5), "hand-made annotators")
    fig = plots.plot_cpe_curves(curves, human=human, caption="profile: ci")
    assert len(fig.axes) == 3
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "scratch (2 seeds)" in labels and any(t.startswith("human limit") for t in labels)
    assert not any("human" in t.get_text() for t in fig.axes[1].get_legend().get_texts())
    step = fig.axes[0].lines[0]  # the single-stage chain first, ends at 100 %
    assert step.get_ydata()[-1] == pytest.approx(100.0) and step.get_ydata()[0] == 0.0
    fig = plots.plot_cpe_against_alone(curves, human=human)
    assert len([ax for ax in fig.axes if ax.axison]) == 12  # 3 targets x 4 other chains
    assert fig.axes[0].get_title() == "head: scratch>hand"


def test_human_limit_errors_are_annotator_vs_mean(tmp_path: Path, head_root: Path) -> None:
    study = report.load_study(_study(tmp_path, "none"))
    errors, source = plots.human_limit_errors(study, head_root / "payer_setup")
    assert errors.shape == (250, 19) and "151-400" in source
    # the shared data README: one annotator against the mean of both, 1.012 mm MRE
    assert round(float(errors.mean()), 3) == 1.012
    missing, why = plots.human_limit_errors(study, tmp_path / "nowhere")
    assert missing is None and "not found" in why
