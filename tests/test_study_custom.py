"""A dataset of your own (a dataset.yaml) as a stage of a transfer chain in a study profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xlm_core import XLMError
from xlm_core.datasets.synth import write_phantoms
from xlm_core.study import load_profile, run_study

PROFILE = """
name: mine_to_hand
note: test profile, a LabelMe dataset as the first stage of a chain to the hand
data: synthetic
synthetic: {{n: 8, seed: 0}}
custom_datasets:
  mine: {descriptor}
datasets:
  hand: {{test_size: [64, 64]}}
  mine: {{test_size: [64, 64]}}
run:
  encoder_weights: none
  epochs: 1
  patience: 1
  train_size: [64, 64]
  batch_size: 2
  lr: 1.0e-3
  loss: spatial_ce
  sigma: 1.5
  val_fraction: 0.25
  device: cpu
seeds: [0]
transfer:
  arch: unet
  encoder: resnet18
  targets: [hand]
  chains: [[imagenet, mine, hand]]
"""


def _profile(tmp_path: Path, descriptor: str) -> Path:
    path = tmp_path / "mine_to_hand.yaml"
    path.write_text(PROFILE.format(descriptor=descriptor))
    return path


def test_a_custom_dataset_must_name_an_existing_descriptor(tmp_path: Path) -> None:
    with pytest.raises(XLMError, match="custom_datasets.mine: .*not found"):
        run_study(_profile(tmp_path, "nowhere/dataset.yaml"), results=tmp_path / "results",
                  aggregate=False, dry_run=True, log=lambda *_: None)
    bad = tmp_path / "bad.yaml"
    bad.write_text(PROFILE.format(descriptor="x.yaml").replace("chains: [[imagenet, mine, hand]]",
                                                               "chains: [[imagenet, theirs, hand]]"))
    with pytest.raises(XLMError, match=r"transfer.chains\[0\].*mine"):
        load_profile(bad)


@pytest.mark.slow
def test_a_labelme_dataset_is_a_transfer_stage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XLM_PROGRESS", "0")
    own = write_phantoms("chest", tmp_path / "own", n=8, seed=3, size_wh=(64, 64), fmt="labelme")
    profile = _profile(tmp_path, "own/dataset.yaml")  # relative to the profile's folder

    result = run_study(profile, results=tmp_path / "results", aggregate=False, log=lambda *_: None)
    assert result.exit_code == 0, result.report.failed
    study = json.loads((tmp_path / "results" / "mine_to_hand" / "study.json").read_text())
    runs = {tuple(r["stages"]): r for r in study["runs"]}
    first, second = runs[("imagenet", "mine")], runs[("imagenet", "mine", "hand")]
    assert second["depends_on"] == [first["run_id"]]

    run_dir = tmp_path / "results" / "mine_to_hand" / "runs"
    mine = json.loads((run_dir / first["run_id"] / "metrics.json").read_text())
    assert Path(mine["config"]["dataset"]) == (Path(own) / "dataset.yaml").resolve()
    assert mine["data_source"] == "synthetic"  # the phantom set carries its SYNTHETIC.json marker
    hand = json.loads((run_dir / second["run_id"] / "metrics.json").read_text())
    assert hand["dataset"] == "hand"
    report = hand["transfer"]
    assert report["source"].endswith(f"{first['run_id']}/checkpoint.pt")
    assert report["head_reinitialised"]  # 6 chest-like landmarks -> 37 hand landmarks

    # moving the descriptor's folder changes no run id: nothing is trained again
    own.rename(tmp_path / "moved")
    moved = _profile(tmp_path, "moved/dataset.yaml")
    again = run_study(moved, results=tmp_path / "results", aggregate=False, log=lambda *_: None)
    assert again.exit_code == 0 and not again.report.trained
