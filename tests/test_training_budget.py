"""What makes the demo cheap without changing what it measures: the warm-up + cosine schedule,
the forward-pass precision, a weightless final resume state, checkpoints loaded without a
wasted initialisation."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import torch

from xlm_core import XLMError, evaluation
from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint
from xlm_core.config import RunConfig
from xlm_core.datasets.synth import write_phantoms
from xlm_core.evaluation import model_precision, resolve_precision, set_precision
from xlm_core.models import build_model
from xlm_core.samples import fit_steps_per_epoch
from xlm_core.training import STATE_NAME, make_scheduler, train_and_evaluate


def _config(**kw) -> RunConfig:
    base = {"dataset": "chest", "root": "", "out": "", "arch": "unet", "encoder": "resnet18",
            "epochs": 10, "patience": 3, "lr": 2e-3, "batch_size": 2}
    base.update(kw)
    return RunConfig(**base)


def _lrs(cfg: RunConfig, steps_per_epoch: int) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.lr)
    sched = make_scheduler(opt, cfg, steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_cosine_warms_up_over_the_first_epoch_then_decays_to_zero():
    cfg = _config(lr_schedule="cosine")
    lrs = _lrs(cfg, steps_per_epoch=5)  # 50 steps, warm-up 5
    assert lrs[0] == pytest.approx(2e-3 / 5) and lrs[4] == pytest.approx(2e-3)
    assert all(a < b for a, b in pairwise(lrs[:5]))  # rising during the warm-up
    assert all(a >= b for a, b in pairwise(lrs[4:]))  # never rising after it
    assert lrs[-1] < 2e-3 * 0.01 and lrs[27] == pytest.approx(1e-3, rel=0.1)  # half-way: half


def test_plateau_is_the_default_and_an_unknown_schedule_is_refused():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1e-3)
    assert isinstance(make_scheduler(opt, _config(), 5), torch.optim.lr_scheduler.ReduceLROnPlateau)
    with pytest.raises(XLMError, match="lr_schedule"):
        make_scheduler(opt, _config(lr_schedule="linear"), 5)


def test_steps_per_epoch_match_the_loader_that_drops_a_partial_batch():
    assert fit_steps_per_epoch(27, 2) == 13 and fit_steps_per_epoch(28, 2) == 14
    assert fit_steps_per_epoch(1, 2) == 1  # one partial batch, kept


def test_precision_auto_is_bf16_on_cuda_and_on_amx_cpus_for_vgg_only(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(evaluation, "cpu_has_amx_bf16", lambda: True)
    assert resolve_precision("auto", cpu, "vgg19") == "bf16"
    assert resolve_precision("auto", cpu, "resnext101_32x8d") == "fp32"
    assert resolve_precision("auto", cpu, "efficientnet-b7") == "fp32"
    assert resolve_precision("auto", cuda, "efficientnet-b7") == "fp32"  # slower in bf16 there
    assert resolve_precision("auto", cuda, "resnext101_32x8d") == "bf16"
    assert resolve_precision("fp32", cuda, "vgg19") == "fp32"
    monkeypatch.setattr(evaluation, "cpu_has_amx_bf16", lambda: False)
    assert resolve_precision("auto", cpu, "vgg19") == "fp32"
    assert resolve_precision("bf16", cpu, "resnet18") == "bf16"
    with pytest.raises(XLMError, match="precision"):
        resolve_precision("fp8", cpu, "vgg19")


def test_set_precision_changes_what_model_logits_runs_in():
    model = build_model("unet", "resnet18", 3, "none").eval()
    images = torch.rand(1, 1, 32, 32)
    set_precision(model, "fp32")
    assert model_precision(model, torch.device("cpu")) == "fp32"
    fp32 = evaluation.model_logits(model, images, torch.device("cpu"))
    set_precision(model, "bf16")
    assert model_precision(model, torch.device("cpu")) == "bf16"
    bf16 = evaluation.model_logits(model, images, torch.device("cpu"))
    assert fp32.dtype == bf16.dtype == torch.float32
    assert not torch.equal(fp32, bf16)  # bf16 rounding shows
    torch.testing.assert_close(fp32, bf16, atol=0.1, rtol=0.05)


@pytest.fixture(scope="module")
def chest(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLM_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("XLM_PROGRESS", "0")
        yield write_phantoms("chest", tmp_path_factory.mktemp("data") / "chest", n=8, seed=0, size_wh=(64, 64))


def test_a_kill_during_evaluation_resumes_from_a_weightless_state_without_training(chest, tmp_path, monkeypatch):
    from xlm_core import training

    cfg = RunConfig(dataset="chest", root=str(chest), out=str(tmp_path / "run"), arch="unet",
                    encoder="resnet18", epochs=2, patience=5, train_size=(32, 32), test_size=(32, 32),
                    batch_size=2, lr_schedule="cosine", device="cpu")

    def killed(*_a, **_k):
        raise KeyboardInterrupt("killed during the evaluation")

    monkeypatch.setattr(training, "_evaluate", killed)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(cfg)
    state_path = tmp_path / "run" / STATE_NAME
    state = torch.load(state_path, weights_only=True)
    assert state["training_done"] and "model" not in state and "optimiser" not in state
    assert state_path.stat().st_size < 100_000
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    model = model_from_checkpoint(ckpt, tmp_path / "run" / "checkpoint.pt")  # strictly, no meta left
    assert all(torch.equal(p, ckpt["model"][k]) for k, p in model.state_dict().items())

    monkeypatch.undo()
    monkeypatch.setenv("XLM_PROGRESS", "0")
    trained = []
    original = training.train_one_epoch
    monkeypatch.setattr(training, "train_one_epoch", lambda *a, **k: trained.append(1) or original(*a, **k))
    metrics = train_and_evaluate(cfg)
    assert trained == [] and metrics["epochs_run"] == 2
    assert metrics["optimisation"]["scheduler"] == "warmup-cosine"
    assert metrics["optimisation"]["precision"] in ("fp32", "bf16-autocast")
    assert not state_path.exists()


def test_an_unusable_image_is_skipped_named_and_recorded(chest, tmp_path, capsys):
    import shutil

    root = tmp_path / "chest"
    shutil.copytree(chest, root)
    victim = min((root / "pngs").glob("*.png"))
    victim.write_bytes(victim.read_bytes()[:200])  # a truncated PNG
    cfg = RunConfig(dataset="chest", root=str(root), out=str(tmp_path / "run"), arch="unet",
                    encoder="resnet18", epochs=1, patience=5, train_size=(32, 32), test_size=(32, 32),
                    batch_size=2, device="cpu")
    metrics = train_and_evaluate(cfg)
    assert [d["image_id"] for d in metrics["dropped"]] == [victim.stem]
    assert victim.name in metrics["dropped"][0]["reason"]
    assert f"skipped unusable image {victim.stem}" in capsys.readouterr().out


def test_a_run_scored_by_an_older_zhu_rule_is_scored_again_without_training(chest, tmp_path, monkeypatch):
    import json

    from xlm_core import training
    from xlm_core.study.runstate import metrics_complete

    cfg = RunConfig(dataset="chest", root=str(chest), out=str(tmp_path / "run"), arch="unet",
                    encoder="resnet18", epochs=1, patience=5, train_size=(32, 32), test_size=(32, 32),
                    batch_size=2, device="cpu")
    first = train_and_evaluate(cfg)
    assert first["test"]["zhu"]["protocol_version"] and metrics_complete(tmp_path / "run")
    old = json.loads(json.dumps(first))
    del old["test"]["zhu"]["protocol_version"]  # as written before Zhu's exact evaluator
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(old))
    assert not metrics_complete(tmp_path / "run")  # the study runner executes it again
    trained = []
    monkeypatch.setattr(training, "train_one_epoch", lambda *a, **k: trained.append(1))
    again = train_and_evaluate(cfg)
    assert trained == [] and again["test"]["zhu"] == first["test"]["zhu"]
    assert metrics_complete(tmp_path / "run")


def test_precise_bn_sets_the_statistics_of_the_current_weights_whatever_they_were(chest):
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.samples import run_samples
    from xlm_core.training import recompute_batchnorm

    cfg = RunConfig(dataset="chest", root=str(chest), out="", arch="unet", encoder="resnet18",
                    train_size=(32, 32))
    fit = run_samples(cfg).fit
    torch.manual_seed(0)
    model = build_model("unet", "resnet18", 6, "none").eval()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    fresh = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    for bn in bns:  # statistics far from any the images give
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(100.0)
    n = recompute_batchnorm(model, fit, (32, 32), PreprocessCache(), torch.device("cpu"), batch_size=4)
    assert n == len(bns) and not model.training and all(bn.momentum == 0.1 for bn in bns)
    first = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    assert not torch.allclose(first["encoder.bn1.running_var"], torch.full_like(first["encoder.bn1.running_var"], 100.0))
    model.load_state_dict({**model.state_dict(), **fresh})
    recompute_batchnorm(model, fit, (32, 32), PreprocessCache(), torch.device("cpu"), batch_size=4)
    for key, value in first.items():  # the same from any start: a function of weights and images
        torch.testing.assert_close(model.state_dict()[key], value)


def test_a_precise_bn_run_keeps_the_statistics_it_was_scored_with(chest, tmp_path):
    cfg = RunConfig(dataset="chest", root=str(chest), out=str(tmp_path / "run"), arch="unet",
                    encoder="resnet18", epochs=1, patience=5, train_size=(32, 32), test_size=(32, 32),
                    batch_size=2, device="cpu", precise_bn=True)
    plain = RunConfig(**{**cfg.__dict__, "precise_bn": False})
    assert cfg.run_hash() != plain.run_hash()
    assert "precise_bn" not in plain.normalised() and "lr_schedule" not in plain.normalised()
    metrics = train_and_evaluate(cfg)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["precise_bn"] is True and metrics["config"]["precise_bn"] is True
