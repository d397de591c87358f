"""The study preflight (data, weights, GPU, disk, projected cost) and per-encoder weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import SHARED_DATA

from xlm_core import XLMError
from xlm_core.cli import main as xlm_main
from xlm_core.study import load_profile, profile_from_dict, run_study
from xlm_core.study.plan import encoder_weights_for, with_encoder_weights


def _real_root(tmp_path: Path) -> Path:
    if not all((SHARED_DATA / d).is_dir() for d in ("head", "hand", "chest")):
        pytest.skip(f"real samples not found at {SHARED_DATA} (set XLM_SHARED_DATA)")
    return SHARED_DATA


def test_paper_profile_on_the_real_samples_is_refused_with_every_problem(tmp_path, capsys):
    """The real samples (1 head image, 9 hands, 11 chests), no ImageNet weights, no GPU: the dry
    run lists every problem at once and exits 2; the run starts nothing."""
    root = _real_root(tmp_path)
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the GPU problem does not arise")
    results = tmp_path / "r"
    code = xlm_main(["study", "run", "paper", "--data-root", str(root), "--results", str(results), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 2
    assert "preflight:" in out and "problem(s); nothing was started" in out
    assert "dataset head" in out and "no test images" in out  # one training image only
    assert "ImageNet weights for vgg19 are not in the Hugging Face cache" in out
    assert "--encoder-weights efficientnet-b7=PATH" in out
    assert "no CUDA GPU here" in out and "--allow-cpu" in out
    assert "optimiser steps" in out and "projected" in out
    code = xlm_main(["study", "run", "paper", "--data-root", str(root), "--results", str(results)])
    assert code == 2
    assert not list((results / "paper" / "runs").glob("*/status.json"))  # no run started


def test_ci_profile_passes_and_projects_its_cost(tmp_path):
    lines: list[str] = []
    result = run_study("ci", results=tmp_path / "r", dry_run=True, log=lines.append)
    text = "\n".join(lines)
    assert result.exit_code == 0 and result.preflight is not None and result.preflight.ok, text
    assert "preflight: ready" in text
    pf = result.preflight
    assert pf.runs == pf.planned == len(result.plan.runs) == 6  # 2 backbone folds, 4 transfer stages
    # ci: 1 epoch each; the backbone folds fit 2-3 images (1 step), the transfer stages more
    assert 6 <= pf.steps <= 6 * 4 and pf.hours > 0 and pf.disk_bytes > 0
    assert pf.peak_disk_bytes > pf.disk_bytes


def test_disk_and_an_unwritable_results_folder_are_problems(tmp_path, monkeypatch):
    from xlm_core.study import preflight as module

    monkeypatch.setattr(module.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10, 10, 1000))
    lines: list[str] = []
    result = run_study("ci", results=tmp_path / "r", dry_run=True, log=lines.append)
    assert result.exit_code == 2 and any("not enough disk" in p for p in result.preflight.problems)
    monkeypatch.undo()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from xlm_core.study.plan import Plan
    from xlm_core.study.preflight import PreflightReport, _check_disk

    report = PreflightReport()
    _check_disk(Plan("s", blocker / "results").results_dir, report)
    assert report.problems and "not writable" in report.problems[0] and "--results" in report.problems[0]


def _vgg19_standin(path: Path) -> Path:
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), path)
    return path


def test_encoder_weights_per_encoder_and_run_ids_from_the_content(tmp_path):
    weights = _vgg19_standin(tmp_path / "vgg19-dcbb9e9d.pth")
    moved = tmp_path / "elsewhere" / "copy.pth"
    moved.parent.mkdir()
    shutil.copy(weights, moved)
    base = load_profile("ci")
    plan_a = run_study(with_encoder_weights(base, {"vgg19": str(weights)}), results=tmp_path / "a",
                       dry_run=True, log=lambda *_: None).plan
    plan_b = run_study(base, results=tmp_path / "b", dry_run=True, log=lambda *_: None,
                       encoder_weights={"vgg19": str(moved)}).plan
    firsts = [r for r in plan_a.runs if not r.depends_on]
    assert all(r.config["encoder_weights"] == str(weights) for r in firsts)
    assert [r.run_id for r in plan_a.runs] == [r.run_id for r in plan_b.runs]  # same content
    changed = tmp_path / "changed.pth"
    state = torch.load(weights, weights_only=True)
    state["features.0.bias"] += 1
    torch.save(state, changed)
    plan_c = run_study(base, results=tmp_path / "c", dry_run=True, log=lambda *_: None,
                       encoder_weights={"vgg19": str(changed)}).plan
    assert {r.run_id for r in plan_c.runs}.isdisjoint(r.run_id for r in plan_a.runs)
    # the preflight loads the file into its encoder as training will
    broken = tmp_path / "broken.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, broken)
    result = run_study(base, results=tmp_path / "d", dry_run=True, log=lambda *_: None,
                       encoder_weights={"vgg19": str(broken)})
    assert result.exit_code == 2
    assert any("encoder weights for vgg19" in p for p in result.preflight.problems)


def test_a_weights_mapping_must_name_every_encoder_the_plan_uses(tmp_path):
    raw = json.loads(json.dumps(load_profile("ci").settings))
    raw["run"]["encoder_weights"] = {"resnext101_32x8d": "imagenet"}
    with pytest.raises(XLMError, match="no weights for encoder 'vgg19'.*--encoder-weights vgg19=PATH"):
        run_study(profile_from_dict(raw), results=tmp_path / "r", dry_run=True, log=lambda *_: None)
    assert encoder_weights_for({"vgg19": "w.pth"}, "vgg19", tmp_path) == str((tmp_path / "w.pth").resolve())
    assert encoder_weights_for("ImageNet", "vgg19", tmp_path) == "imagenet"


def test_the_cli_flag_parses_encoder_equals_path(tmp_path, capsys):
    with pytest.raises(SystemExit):
        xlm_main(["study", "run", "ci", "--encoder-weights", "vgg19", "--dry-run"])
    assert "ENCODER=PATH" in capsys.readouterr().err


def test_the_cpu_projection_counts_the_measured_encoder_rate_bf16_and_a_cost_per_run(tmp_path, monkeypatch):
    """Each run on a CPU: steps x FLOPs x batch at its encoder family's measured rate (bf16
    autocast 1.33 x faster) plus a fixed cost a run; the ci profile's runs are EfficientNet-Lite0."""
    from xlm_core.study import preflight as module

    def hours(precision: str) -> float:
        raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "studies" / "ci.yaml").read_text())
        raw["run"]["precision"] = precision
        raw["backbones"]["pairs"] = [["unet", "tu-tf_efficientnet_lite0"]]
        raw["transfer"]["encoder"] = "tu-tf_efficientnet_lite0"
        result = run_study(profile_from_dict(raw), results=tmp_path / precision, dry_run=True, workers=2,
                           log=lambda _: None)
        return result.preflight.hours, result.plan

    fp32, plan = hours("fp32")
    bf16, _ = hours("bf16")
    assert {r.encoder for r in plan.runs} == {"tu-tf_efficientnet_lite0"}
    overhead = len(plan.runs) * module.CPU_RUN_OVERHEAD_S / 3600 / 2  # 2 runs side by side
    assert fp32 - overhead == pytest.approx(module.CPU_BF16_SPEEDUP * (bf16 - overhead), rel=1e-6)
    monkeypatch.setattr(module, "CPU_FLOPS_BY_ENCODER", {})  # the VGG19 figure for every encoder
    slower, _ = hours("fp32")
    assert slower - overhead == pytest.approx((fp32 - overhead) * 130 / 90, rel=1e-6)
