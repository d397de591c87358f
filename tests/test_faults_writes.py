"""Nothing half-written: every file the project writes appears whole or not at all, and a
reader never takes a partial file for a whole one.

Writes are really interrupted: a forked process is SIGKILLed while it is inside a write (at
the moment the data is on its way to disk, before the rename), or at random moments of a
loop of writes; then every file that exists must read back whole, as one version. Damaged
files (truncated checkpoint, last.pt, cache entry, metrics.json) are refused or rebuilt.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from xlm_core import XLMError
from xlm_core.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_torch
from xlm_core.config import RunConfig
from xlm_core.datasets.cache import PreprocessCache
from xlm_core.io import atomic_write_json
from xlm_core.landmark_csv import read_landmark_csv, write_landmark_csv
from xlm_core.training import finished_metrics, train_and_evaluate, write_history

# --------------------------------------------------------------------------- writers and readers
# each writer writes "version v" of its file; each reader returns v, or raises if the file is
# not one whole version


def write_checkpoint(path: Path, v: int) -> None:
    save_torch(path, {"format": CHECKPOINT_FORMAT, "v": v, "model": {"w": torch.full((512, 512), float(v))}})


def read_checkpoint(path: Path) -> int:
    ckpt = load_checkpoint(path)
    assert bool((ckpt["model"]["w"] == ckpt["v"]).all())
    return int(ckpt["v"])


def write_metrics(path: Path, v: int) -> None:
    atomic_write_json(path, {"v": v, "payload": [v] * 50_000})


def read_metrics(path: Path) -> int:
    doc = json.loads(path.read_text())
    assert doc["payload"] == [doc["v"]] * 50_000
    return int(doc["v"])


def write_hist(path: Path, v: int) -> None:
    write_history(path, [{"epoch": e, "train_loss": v, "val_loss": v, "lr": 1e-3, "seconds": 0.5}
                         for e in range(1, 2001)])


def read_hist(path: Path) -> int:
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_loss,lr,seconds" and len(lines) == 2001
    values = {line.split(",")[1] for line in lines[1:]}
    assert len(values) == 1
    return int(float(values.pop()))


def write_predictions(path: Path, v: int) -> None:
    write_landmark_csv(path, {f"{i:04d}": np.full((37, 2), float(v)) for i in range(100)})


def read_predictions(path: Path) -> int:
    table = read_landmark_csv(path)
    assert len(table) == 100
    values = {float(v) for xy in table.values() for v in xy.ravel()}
    assert len(values) == 1
    return int(values.pop())


WRITERS: dict[str, tuple[str, Callable[[Path, int], None], Callable[[Path], int]]] = {
    "checkpoint": ("checkpoint.pt", write_checkpoint, read_checkpoint),
    "metrics": ("metrics.json", write_metrics, read_metrics),
    "history": ("history.csv", write_hist, read_hist),
    "predictions": ("predictions.csv", write_predictions, read_predictions),
}


# --------------------------------------------------------------------------- killing a writer
# A writer runs in a forked child when it is pure Python/numpy; torch writes run in a spawned
# interpreter (a fork of a process whose OpenMP pool has run deadlocks on the next parallel op).

TESTS = Path(__file__).resolve().parent
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import test_faults_writes as t; t.child_main(sys.argv[2:])"


def _hang_in_fsync(inside: Path) -> None:
    """From now on, the fsync of xlm_core.io.atomic_path signals ``inside`` and blocks: the
    bytes are written to the temporary file, the rename has not happened."""
    def hang(fd: int) -> None:
        inside.write_text(str(os.getpid()))
        time.sleep(120)

    os.fsync = hang  # only ever called in a child process


def write_loop(folder: Path, started: Path) -> None:
    """Rewrite every file of WRITERS with versions 1, 2, 3, ... until killed."""
    v = 0
    while True:
        v += 1
        for name, write, _ in WRITERS.values():
            write(folder / name, v)
        if v == 1:
            started.write_text("1")


def child_main(args: list[str]) -> None:
    """Entry point of a spawned child: ``hang KIND TARGET V INSIDE`` or ``loop FOLDER STARTED``."""
    if args[0] == "hang":
        kind, target, v, inside = args[1:]
        _hang_in_fsync(Path(inside))
        WRITERS[kind][1](Path(target), int(v))
    else:
        write_loop(Path(args[1]), Path(args[2]))


class _Child:
    """A writer process: forked (``body``) or spawned (``argv`` for :func:`child_main`)."""

    def __init__(self, body: Callable[[], None] | None = None, argv: list[str] | None = None):
        self.proc = None
        if argv is not None:
            import subprocess
            import sys

            env = dict(os.environ, OMP_NUM_THREADS="1", NO_ALBUMENTATIONS_UPDATE="1")
            self.proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(TESTS), *argv], env=env)
            self.pid = self.proc.pid
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                body()
            except BaseException:  # noqa: BLE001
                code = 3
            os._exit(code)
        self.pid = pid

    def exited(self) -> int | None:
        if self.proc is not None:
            return self.proc.poll()
        done, status = os.waitpid(self.pid, os.WNOHANG)
        return None if done == 0 else status

    def sigkill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            assert self.proc.wait() == -signal.SIGKILL, "the writer ended on its own"
            return
        _, status = os.waitpid(self.pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the writer ended on its own"

    def wait_for(self, path: Path, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            status = self.exited()
            if status is not None or time.monotonic() > deadline:
                if status is None:
                    self.sigkill()
                pytest.fail(f"the writer never reached the write (status {status})")
            time.sleep(0.005)


def _kill_inside_write(kind: str, target: Path, v: int, tmp_path: Path) -> None:
    """SIGKILL a process while it writes version ``v`` of ``target`` with WRITERS[kind]."""
    inside = tmp_path / "inside-write"
    inside.unlink(missing_ok=True)
    if kind == "checkpoint":
        child = _Child(argv=["hang", kind, str(target), str(v), str(inside)])
    else:
        def body() -> None:
            _hang_in_fsync(inside)
            WRITERS[kind][1](target, v)
        child = _Child(body)
    child.wait_for(inside)
    child.sigkill()


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_sigkill_inside_a_write_leaves_the_previous_version(kind, tmp_path):
    name, write, read = WRITERS[kind]
    target = tmp_path / "run" / name
    write(target, 1)
    _kill_inside_write(kind, target, 2, tmp_path)
    assert read(target) == 1  # the old version, whole
    leftovers = [p for p in target.parent.iterdir() if p.name != name]
    assert leftovers and all(p.name.startswith(f".{name}.") for p in leftovers)  # the killed temporary
    write(target, 3)  # the next write goes through despite the leftover temporary
    assert read(target) == 3


@pytest.mark.slow
def test_sigkill_at_random_moments_of_a_write_loop(tmp_path):
    """Kill a process rewriting all four files in a loop, at several moments: whatever exists
    afterwards is one whole version of its file."""
    folder = tmp_path / "run"
    started = tmp_path / "started"
    versions: dict[str, set[int]] = {name: set() for name, _, _ in WRITERS.values()}
    for delay_s in (0.0, 0.13, 0.41):
        started.unlink(missing_ok=True)
        child = _Child(argv=["loop", str(folder), str(started)])
        child.wait_for(started)
        time.sleep(delay_s)
        child.sigkill()
        for name, _, read in WRITERS.values():
            versions[name].add(read(folder / name))  # raises on a partial file
    assert all(v for v in versions.values())


# --------------------------------------------------------------------------- readers reject partial files


def test_truncated_checkpoint_is_refused_naming_the_file(tmp_path):
    whole = tmp_path / "whole.pt"
    write_checkpoint(whole, 7)
    data = whole.read_bytes()
    for cut in (0, 1, 100, len(data) // 2, len(data) - 10):
        part = tmp_path / f"checkpoint_{cut}.pt"
        part.write_bytes(data[:cut])
        with pytest.raises(XLMError, match=f"checkpoint_{cut}.pt"):
            read_checkpoint(part)
    assert read_checkpoint(whole) == 7


def test_truncated_cache_entry_is_rebuilt(tmp_path, chest_root):
    image = chest_root / "pngs" / "CHNCXR_0001_0.png"
    cache = PreprocessCache(tmp_path / "cache")
    first = cache.load(image, (40, 32))
    entry = cache.entry_path(image, (40, 32))
    data = entry.read_bytes()
    for cut in (0, 60, len(data) // 2, len(data) - 4):
        entry.write_bytes(data[:cut])
        again = PreprocessCache(tmp_path / "cache").load(image, (40, 32))
        np.testing.assert_array_equal(again, first)
        assert entry.read_bytes() == data  # rewritten whole
    # killed while writing its entry: no entry, and the next load builds it
    entry.unlink()
    inside = tmp_path / "inside-write"

    def body() -> None:
        _hang_in_fsync(inside)
        PreprocessCache(tmp_path / "cache").load(image, (40, 32))

    child = _Child(body)
    child.wait_for(inside)
    child.sigkill()
    assert not entry.exists() and list(entry.parent.glob(f".{entry.name}.*"))
    np.testing.assert_array_equal(PreprocessCache(tmp_path / "cache").load(image, (40, 32)), first)


def test_incomplete_metrics_is_not_a_finished_run(tmp_path):
    from xlm_core.study.runstate import metrics_complete

    cfg = RunConfig(dataset="chest", root="r", out=str(tmp_path))
    full = {"config": cfg.normalised() | {"out": str(tmp_path), "device": "auto", "num_workers": 0},
            "dataset": "chest", "data_source": "real", "unit": "px", "mre": 1.0, "mean_shape_mre": 2.0,
            "test": {}, "heldout": None, "transfer": None, "epochs_run": 1, "best_epoch": 1,
            "train_seconds": 1.0}
    text = json.dumps(full)
    path = tmp_path / "metrics.json"
    for cut in (0, 1, len(text) // 3, len(text) - 1):
        path.write_text(text[:cut])
        assert finished_metrics(tmp_path, cfg) is None
        assert not metrics_complete(tmp_path)
    path.write_text(text)
    assert finished_metrics(tmp_path, cfg) is not None and metrics_complete(tmp_path)


def test_truncated_training_state_is_refused_naming_it(tmp_path, monkeypatch):
    from xlm_core.datasets.synth import write_phantoms

    monkeypatch.setenv("XLM_CACHE", str(tmp_path / "cache"))
    root = write_phantoms("chest", tmp_path / "chest", n=4, seed=0, size_wh=(32, 32))
    out = tmp_path / "run"
    out.mkdir()
    save_torch(out / "last.pt", {"format": "xlm-train-state/1", "model": {"w": torch.zeros(4096)}})
    data = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[: len(data) // 2])
    cfg = RunConfig(dataset="chest", root=str(root), out=str(out), arch="unet", encoder="resnet18", epochs=1,
                    train_size=(32, 32), test_size=(32, 32), device="cpu")
    with pytest.raises(XLMError, match=r"last\.pt.*(corrupt|truncated)"):
        train_and_evaluate(cfg)
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]  # nothing else written
