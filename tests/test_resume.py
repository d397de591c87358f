"""A run killed with SIGKILL and started again ends with exactly the numbers of an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xlm_core.datasets.synth import write_phantoms

EPOCHS = 3
_MAIN = "import sys; from xlm_core.cli import main; sys.exit(main())"


def _command(root: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-c", _MAIN, "train", "--dataset", "chest", "--root", str(root),
        "--arch", "unet", "--encoder", "resnet18", "--epochs", str(EPOCHS), "--patience", "5",
        "--train-size", "32", "32", "--test-size", "32", "32", "--batch-size", "2", "--seed", "3",
        "--device", "cpu", "--out", str(out),
    ]


def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "XLM_CACHE": str(cache), "XLM_PROGRESS": "0", "NO_ALBUMENTATIONS_UPDATE": "1",
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
    })
    return env


def _comparable(metrics: dict) -> dict:
    """metrics.json without what legitimately differs: the output folder and wall times."""
    m = json.loads(json.dumps(metrics))
    m["config"].pop("out")
    m.pop("train_seconds")
    return m


def _history(out: Path) -> list[dict]:
    rows = list(csv.DictReader((out / "history.csv").open()))
    for row in rows:
        row.pop("seconds")
    return rows


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path):
    root = write_phantoms("chest", tmp_path / "chest", n=8, seed=0, size_wh=(64, 64))
    env = _env(tmp_path / "cache")
    straight, killed = tmp_path / "straight", tmp_path / "killed"

    reference = subprocess.Popen(_command(root, straight), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    victim = subprocess.Popen(_command(root, killed), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "last.pt").exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert (killed / "last.pt").exists() and not (killed / "metrics.json").exists()
    epochs_before_kill = len(_history(killed))
    assert 1 <= epochs_before_kill < EPOCHS

    log, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, log
    resumed = subprocess.run(_command(root, killed), env=env, capture_output=True, text=True, timeout=600,
                             check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming after epoch {epochs_before_kill}" in resumed.stdout

    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert _comparable(a) == _comparable(b)
    assert a["epochs_run"] == b["epochs_run"] == EPOCHS
    assert _history(straight) == _history(killed)
    assert (straight / "predictions.csv").read_text() == (killed / "predictions.csv").read_text()
    assert not (killed / "last.pt").exists()  # removed once the run is complete
