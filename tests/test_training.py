"""The fit loop: splits without leakage, outputs, self-describing checkpoints, finished runs, transfer."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from xlm_core import XLMError
from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint
from xlm_core.config import RunConfig
from xlm_core.datasets.synth import write_phantoms
from xlm_core.samples import run_samples
from xlm_core.training import METRICS_KEYS, EarlyStopping, progress_enabled, train_and_evaluate


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private preprocessing cache and no progress bars for every test here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLM_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("XLM_PROGRESS", "0")
        yield


@pytest.fixture(scope="module")
def chest_phantoms(env, tmp_path_factory) -> Path:
    """8 synthetic chest x-rays (6 landmarks) at 64x64: 7 train, 1 test."""
    return write_phantoms("chest", tmp_path_factory.mktemp("data") / "chest", n=8, seed=0, size_wh=(64, 64))


@pytest.fixture(scope="module")
def trained(chest_phantoms, tmp_path_factory) -> tuple[RunConfig, dict]:
    """One finished 2-epoch run (shared by the tests of this module)."""
    cfg = tiny_config(chest_phantoms, tmp_path_factory.mktemp("runs") / "run")
    return cfg, train_and_evaluate(cfg)


def tiny_config(root: Path, out: Path, **kw) -> RunConfig:
    base = {"dataset": "chest", "root": str(root), "out": str(out), "arch": "unet", "encoder": "resnet18",
            "epochs": 2, "patience": 5, "train_size": (32, 32), "test_size": (32, 32), "batch_size": 2,
            "seed": 0, "device": "cpu"}
    base.update(kw)
    return RunConfig(**base)


def test_early_stopping_counts_epochs_without_improvement():
    stop = EarlyStopping(patience=2)
    assert stop.step(1.0, 1) and not stop.should_stop
    assert not stop.step(1.0, 2)  # equal is no improvement
    assert stop.step(0.5, 3) and stop.bad_epochs == 0
    assert not stop.step(0.6, 4) and not stop.should_stop
    assert not stop.step(0.7, 5) and stop.should_stop
    assert stop.best == 0.5 and stop.best_epoch == 3
    again = EarlyStopping(patience=2)
    again.load_state_dict(stop.state_dict())
    assert again == stop


def test_progress_switch(monkeypatch):
    monkeypatch.setenv("XLM_PROGRESS", "0")
    assert not progress_enabled()
    monkeypatch.setenv("XLM_PROGRESS", "1")
    assert progress_enabled()


def test_cv_split_has_no_leakage(env, tmp_path):
    """Trap 4: the early-stopping set comes out of the training part, never the scored fold."""
    root = write_phantoms("chest", tmp_path / "chest10", n=12, seed=1, size_wh=(32, 32))
    cfg = tiny_config(root, tmp_path / "run", folds=3, fold=0, extra={"train": 9})
    heldouts = []
    for fold in range(3):
        s = run_samples(replace(cfg, fold=fold))
        fit, val, held = ({x.id for x in part} for part in (s.fit, s.val, s.heldout))
        test = {x.id for x in s.test}
        assert val and held and fit
        assert not (fit & val) and not (fit & held) and not (val & held)
        assert not (test & (fit | val | held))
        assert fit | val | held == set(s.lset.train_ids)
        heldouts.append(held)
    assert set().union(*heldouts) == set(s.lset.train_ids)
    assert sum(len(h) for h in heldouts) == 9
    # deterministic
    assert [x.id for x in run_samples(replace(cfg, fold=1)).val] == [x.id for x in run_samples(replace(cfg, fold=1)).val]
    with pytest.raises(XLMError, match="fold: cross-validation needs both folds and fold"):
        replace(cfg, fold=None)  # RunConfig refuses it before any split


@pytest.mark.slow
def test_train_writes_a_complete_run(trained):
    cfg, metrics = trained
    out = Path(cfg.out)
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt", "history.csv", "predictions.csv", "predictions_grid.npz", "metrics.json"}
    assert all(k in metrics for k in METRICS_KEYS)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["data_source"] == "synthetic" and metrics["dataset"] == "chest"
    assert metrics["epochs_run"] == 2 and metrics["heldout"] is None
    for protocol in ("clean", "zhu"):
        score = metrics["test"][protocol]
        assert score["protocol"] == protocol and score["n_images"] == 1 and score["n_landmarks"] == 6
        assert math.isfinite(score["mre"]) and math.isfinite(score["mean_shape_mre"])
    assert metrics["mre"] == metrics["test"]["clean"]["mre"]
    assert metrics["mean_shape_mre"] == metrics["test"]["clean"]["mean_shape_mre"]

    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "lr", "seconds"}
    assert all(math.isfinite(float(r["val_loss"])) for r in rows)

    pred = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(pred) == 6 and {r["split"] for r in pred} == {"test"}
    assert set(pred[0]) >= {"image_id", "landmark", "x", "y", "error_px", "error"}

    # the checkpoint describes itself; loading it needs no other flag (weights_only=True)
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    for key in ("arch", "encoder", "n_landmarks", "landmark_names", "train_size", "test_size",
                "normalisation", "dataset", "loss", "sigma", "data_source"):
        assert key in ckpt, key
    assert ckpt["arch"] == "unet" and ckpt["n_landmarks"] == 6 and ckpt["test_size"] == [32, 32]
    assert ckpt["data_source"] == "synthetic"
    model = model_from_checkpoint(load_checkpoint(out / "checkpoint.pt"), out / "checkpoint.pt")
    assert model.xlm_spec["encoder"] == "resnet18"


@pytest.mark.slow
def test_finished_run_returns_at_once_and_refuses_other_parameters(trained):
    cfg, first = trained
    out = Path(cfg.out)
    stamp = (out / "checkpoint.pt").stat().st_mtime_ns
    again = train_and_evaluate(replace(cfg, device="auto", num_workers=0))  # not part of the run's identity
    assert again == first
    assert (out / "checkpoint.pt").stat().st_mtime_ns == stamp  # not retrained
    with pytest.raises(XLMError, match="other parameters.*lr"):
        train_and_evaluate(replace(cfg, lr=1e-3))


@pytest.mark.slow
def test_transfer_report_in_metrics(trained, tmp_path):
    cfg, _ = trained
    source = Path(cfg.out) / "checkpoint.pt"
    target = train_and_evaluate(replace(cfg, out=str(tmp_path / "target"), epochs=1, init=str(source)))
    report = target["transfer"]
    assert report["encoder_matched"] == report["encoder_expected"] > 0
    assert report["decoder_matched"] == report["decoder_expected"] > 0
    assert report["head_matched"] == report["head_expected"]
    assert not report["head_reinitialised"]


def test_bad_init_leaves_run_dir_empty(chest_phantoms, tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    out = tmp_path / "run"
    with pytest.raises(XLMError, match="corrupt.pt"):
        train_and_evaluate(tiny_config(chest_phantoms, out, init=str(bad)))
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_resume_state_interval_skips_writes_and_a_resume_replays_to_the_same_numbers(
    chest_phantoms, tmp_path, monkeypatch
):
    """checkpoint_every_s: the large resume state is written at most that often (and at the
    end); a run resumed from an older state replays the epochs since then to equal numbers."""
    import xlm_core.training as training

    saved_epochs = []
    real_save = training._save_state

    def counting_save(path, cfg, model, optimiser, scheduler, stopper, history, epoch, *rest):
        saved_epochs.append(epoch)
        if epoch == 1 or not stale[0]:
            real_save(path, cfg, model, optimiser, scheduler, stopper, history, epoch, *rest)

    stale = [False]
    monkeypatch.setattr(training, "_save_state", counting_save)
    checkpoint_writes = []
    real_save_torch = training.save_torch

    def counting_save_torch(path, obj):
        if Path(path).name == training.CHECKPOINT_NAME:
            checkpoint_writes.append(obj["epoch"])
        real_save_torch(path, obj)

    monkeypatch.setattr(training, "save_torch", counting_save_torch)
    reference = train_and_evaluate(tiny_config(chest_phantoms, tmp_path / "ref", epochs=3,
                                               checkpoint_every_s=3600))
    assert saved_epochs == [3]  # only the final state: an hour had not passed
    # the best weights are written with that state, once, and they are the best epoch's
    history = (tmp_path / "ref" / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    val = [float(row.split(",")[header.index("val_loss")]) for row in history[1:]]
    best_epoch = 1 + val.index(min(val))
    assert checkpoint_writes == [best_epoch] and reference["best_epoch"] == best_epoch
    ckpt = torch.load(tmp_path / "ref" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == best_epoch
    checkpoint_writes.clear()

    # killed after epoch 3's checkpoint and history, its last resume state from epoch 1
    saved_epochs.clear()
    stale[0] = True
    cfg = tiny_config(chest_phantoms, tmp_path / "resumed", epochs=3)
    real_evaluate = training._evaluate
    monkeypatch.setattr(training, "_evaluate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(cfg)
    assert saved_epochs == [1, 2, 3]
    state = torch.load(Path(cfg.out) / "last.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 1
    monkeypatch.setattr(training, "_evaluate", real_evaluate)
    stale[0] = False
    resumed = train_and_evaluate(cfg)
    assert resumed["mre"] == reference["mre"] and resumed["test"] == reference["test"]


def test_trace_mre_records_each_epoch_and_leaves_the_training_unchanged(chest_phantoms, tmp_path):
    """trace_mre scores the validation and test images after every epoch. It must not change
    what is trained (RNG states restored, eval mode undone), it is not part of the run's
    identity, and its test MRE at the best epoch is the run's final test MRE."""
    plain = train_and_evaluate(tiny_config(chest_phantoms, tmp_path / "plain", epochs=3))
    cfg = tiny_config(chest_phantoms, tmp_path / "traced", epochs=3, trace_mre=True)
    traced = train_and_evaluate(cfg)
    assert cfg.run_hash() == tiny_config(chest_phantoms, tmp_path / "plain", epochs=3).run_hash()

    def rows(run):
        with open(Path(run) / "history.csv") as f:
            return list(csv.DictReader(f))

    plain_rows, traced_rows = rows(tmp_path / "plain"), rows(tmp_path / "traced")
    assert "test_ratio" not in plain_rows[0] and len(traced_rows) == len(plain_rows) == 3
    for a, b in zip(plain_rows, traced_rows):
        assert (a["train_loss"], a["val_loss"], a["lr"]) == (b["train_loss"], b["val_loss"], b["lr"])
        assert all(math.isfinite(float(b[k])) for k in ("val_mre", "val_ratio", "test_mre", "test_ratio"))
    assert traced["test"] == plain["test"] and traced["best_epoch"] == plain["best_epoch"]
    best = traced_rows[traced["best_epoch"] - 1]
    assert float(best["test_mre"]) == pytest.approx(traced["mre"], rel=1e-9)
    assert float(best["test_ratio"]) == pytest.approx(traced["mre"] / traced["mean_shape_mre"], rel=1e-9)


def test_a_run_scored_with_an_old_decoder_is_scored_again_without_training(chest_phantoms, tmp_path):
    import shutil

    from xlm_core.study.runstate import metrics_complete

    cfg = tiny_config(chest_phantoms, tmp_path / "run", loss="spatial_ce", sigma=1.5, lr=1e-3, trace_mre=True)
    first = train_and_evaluate(cfg)
    out = Path(cfg.out)
    assert first["decoder"] == first["trace_decoder"] == "softargmax-r5-sym"
    assert metrics_complete(out)
    # what a run finished before decoders were named looks like: no decoder, Newton scores
    legacy = {k: v for k, v in first.items() if k not in ("decoder", "trace_decoder")}
    (out / "metrics.json").write_text(json.dumps({**legacy, "mre": 99.0}))
    kept = {name: (out / name).stat().st_mtime_ns for name in ("checkpoint.pt", "history.csv")}
    shutil.copy(out / "history.csv", tmp_path / "history.csv")
    assert not metrics_complete(out)  # the study runner executes its notebook again

    again = train_and_evaluate(cfg)
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # not trained
    assert (out / "history.csv").read_text() == (tmp_path / "history.csv").read_text()
    assert again["decoder"] == "softargmax-r5-sym" and again["trace_decoder"] == "newton"
    assert again["mre"] == pytest.approx(first["mre"], rel=1e-9)  # the same checkpoint, decoded again
    for key in ("epochs_run", "best_epoch", "best_val_loss", "train_seconds", "mean_shape_mre"):
        assert again[key] == pytest.approx(first[key], rel=1e-9), key
    assert metrics_complete(out)
    assert train_and_evaluate(cfg) == again  # now finished: returned as it is
