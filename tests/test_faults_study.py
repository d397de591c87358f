"""Faults during a study, performed for real: SIGKILL of ``xlm study run`` (its process group)
mid-run, a Dask worker killed while it executes a run, two ``xlm study run`` racing on one
results folder, and invalid profiles refused through the command line before any work.

Every kill happens at a point the test names, never at a moment found by a clock: the study
is killed while a run is paused at a kill point (``xlm_core.pause_for_test``), and the Dask
worker dies by the runner's own SIGKILL as it executes the victim run.

The kill test trains for real (tiny profile, CPU) and compares the final table and every
run's numbers with an uninterrupted study run side by side; the others use a fake run
notebook or the runner's injectable runner callable (the notebook is not their point).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import stand_in_roots

from xlm_core.cli import main as xlm_main

REPO = Path(__file__).resolve().parents[1]
_MAIN = "import sys; from xlm_core.cli import main; sys.exit(main())"
KILL_EPOCHS = 4


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "XLM_CACHE": str(tmp_path / "cache"), "XLM_PROGRESS": "0", "NO_ALBUMENTATIONS_UPDATE": "1",
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
    })
    return env


def _xlm(*args: str) -> list[str]:
    return [sys.executable, "-c", _MAIN, *args]


def _kernels_of(pid: int) -> list[int]:
    """Processes started with JPY_PARENT_PID=pid: the notebook kernels of process ``pid``."""
    found = []
    needle = f"JPY_PARENT_PID={pid}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists()
                 and "Z" not in Path(f"/proc/{p}/stat").read_text().split(")")[-1][:3]]
        time.sleep(0.1)
    return alive


# --------------------------------------------------------------------------- 1. SIGKILL mid-study
#
# The study is killed at a point the test names (xlm_core.pause_for_test): the run reaching it
# announces itself on a named pipe and blocks, and the test kills the study's process group then.


def kill_profile() -> dict:
    """Two chained runs (imagenet>hand, imagenet>hand>head), U-Net/ResNet18 at 64x64, 4 epochs."""
    return {
        "name": "k", "note": "fault test: tiny phantoms", "data": "synthetic",
        "synthetic": {"n": 6, "seed": 0},
        "datasets": {"head": {"test_size": [64, 52]}, "hand": {"test_size": [64, 46]}},
        "run": {"encoder_weights": "none", "epochs": KILL_EPOCHS, "patience": 10, "train_size": [64, 64],
                "batch_size": 2, "lr": 1.0e-3, "loss": "spatial_ce", "sigma": 1.5, "val_fraction": 0.25,
                "device": "cpu", "num_workers": 0},
        "seeds": [0],
        "backbones": None,
        "transfer": {"arch": "unet", "encoder": "resnet18", "targets": ["head"],
                     "chains": [["imagenet", "hand", "head"]], "matched_control": False},
    }


def _comparable_metrics(path: Path) -> dict:
    m = json.loads(path.read_text())
    for key in ("out", "root", "init"):
        m["config"].pop(key)
    m.pop("train_seconds")
    if m.get("transfer"):
        m["transfer"] = {k: v for k, v in m["transfer"].items() if "path" not in k and k != "source"}
    return m


def _history(path: Path) -> list[list[str]]:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    col = rows[0].index("seconds")
    return [r[:col] + r[col + 1:] for r in rows]


def _study_command(profile: Path, results: Path) -> list[str]:
    return _xlm("study", "run", str(profile), "--results", str(results), "--no-aggregate")


def _wait_for_pause(fifo_fd: int, proc: subprocess.Popen) -> str:
    """Block until a process announces a pause on the pipe (its line), reading ``proc``'s output
    meanwhile; fails with that output if ``proc`` ends first. The timeout only bounds a hang."""
    output = b""
    while True:
        ready, _, _ = select.select([fifo_fd, proc.stdout], [], [], 600)
        assert ready, "neither a pause nor the end of the study within 600 s:\n" + output.decode()
        if fifo_fd in ready:
            return os.read(fifo_fd, 4096).decode()
        chunk = os.read(proc.stdout.fileno(), 65536)
        assert chunk, "the study ended before its pause point:\n" + output.decode()
        output += chunk


def _file_stamps(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


def _kill_at(point: str, run_id: str, command: list[str], env: dict, fifo: Path) -> None:
    """Start ``command``, wait until run ``run_id`` reaches ``point`` (xlm_core.pause_for_test)
    and SIGKILL the process group; then wait for its orphaned notebook kernels to exit."""
    from xlm_core import PAUSE_ENV, PAUSE_FIFO_ENV

    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(fifo, os.O_WRONLY)  # held: the reader sees no end of file before the pause
    try:
        pause = {PAUSE_ENV: f"{point}@{run_id}", PAUSE_FIFO_ENV: str(fifo)}
        victim = subprocess.Popen(command, env={**env, **pause}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            paused = _wait_for_pause(reader, victim)
            kernels = _kernels_of(victim.pid)
        finally:
            os.killpg(victim.pid, signal.SIGKILL)  # the runner and everything in its process group
            victim.wait()
            victim.stdout.close()
    finally:
        os.close(reader)
        os.close(writer)
    assert paused.split()[0] == point and victim.returncode == -signal.SIGKILL
    # the notebook kernel (its own session) notices its parent died and exits, so no orphan
    # keeps writing into the run folder once the study is started again
    assert kernels and not _wait_gone(kernels, 60.0), "an orphaned kernel kept running"


@pytest.mark.slow
def test_sigkill_of_a_study_at_each_kill_point_loses_only_the_work_since_the_checkpoint(tmp_path):
    """SIGKILL of ``xlm study run`` while its second run (head) is at each kill point in turn,
    each kill in the study started again after the previous one:

    1. ``checkpoint``: after its first resume state (epoch 1): the next study resumes it from last.pt;
    2. ``metrics``: after its metrics.json, before last.pt is removed: executed again, no training;
    3. ``notebook``: its executed notebook complete but not yet renamed onto run.ipynb: the same.

    A killed run is never counted done (``xlm study status`` says what the next run does with
    it), the finished first run is never touched, and the final numbers equal those of an
    uninterrupted study run side by side."""
    from xlm_core.study import study_status
    from xlm_core.study.runstate import metrics_complete, run_done

    profile = tmp_path / "k.yaml"
    profile.write_text(yaml.safe_dump(kill_profile()))
    env = _env(tmp_path)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    fifo = tmp_path / "pause"
    os.mkfifo(fifo)
    reference = subprocess.Popen(_study_command(profile, straight), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    try:
        planned = subprocess.run(_xlm("study", "run", str(profile), "--results", str(killed), "--dry-run"),
                                 env=env, capture_output=True, text=True, timeout=300, check=False)
        assert planned.returncode == 0, planned.stdout + planned.stderr
        runs_planned = json.loads((killed / "k" / "study.json").read_text())["runs"]
        (first,) = [r["run_id"] for r in runs_planned if r["dataset"] == "hand"]
        (second,) = [r["run_id"] for r in runs_planned if r["dataset"] == "head"]
        runs = killed / "k" / "runs"
        finished, interrupted = runs / first, runs / second

        def state_of_second() -> dict:
            (row,) = [r for r in study_status("k", killed) if r["run_id"] == second]
            return row

        # 1. after the first resume state of the second run
        _kill_at("checkpoint", second, _study_command(profile, killed), env, fifo)
        assert run_done(finished) and (finished / "run.ipynb").is_file()
        finished_stamp = _file_stamps(finished)
        # as the kill left it
        assert json.loads((interrupted / "status.json").read_text())["state"] == "running"
        assert (interrupted / "last.pt").is_file() and not (interrupted / "metrics.json").exists()
        row = state_of_second()
        assert row["state"] == "pending" and "training resumes from its last checkpoint" in row["detail"], row
        epoch_1 = (interrupted / "history.csv").read_text().splitlines()
        assert len(epoch_1) == 2  # the header and epoch 1

        # 2. the next study resumes it; killed again after its metrics.json
        _kill_at("metrics", second, _study_command(profile, killed), env, fifo)
        assert metrics_complete(interrupted) and (interrupted / "last.pt").is_file()
        assert not (interrupted / "run.ipynb").exists() and not run_done(interrupted)
        row = state_of_second()
        assert row["state"] == "pending" and "its notebook is executed again, without training" in row["detail"]
        metrics_stamp = (interrupted / "metrics.json").stat().st_mtime_ns
        # resumed from last.pt: epoch 1's row as the first study wrote it (its seconds too), then the rest
        history = (interrupted / "history.csv").read_text().splitlines()
        assert history[:2] == epoch_1 and len(history) == 1 + KILL_EPOCHS

        # 3. the next study executes its notebook again; killed before the notebook's rename
        _kill_at("notebook", second, _study_command(profile, killed), env, fifo)
        (temporary,) = interrupted.glob(".run.*.ipynb")
        assert "finished run, returning its metrics" in temporary.read_text()  # whole, one rename short
        assert not (interrupted / "run.ipynb").exists() and not (interrupted / "last.pt").exists()
        assert metrics_complete(interrupted) and not run_done(interrupted)
        assert state_of_second()["state"] == "pending"

        again = subprocess.run(_study_command(profile, killed), env=env, capture_output=True, text=True,
                               timeout=600, check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "1 of 2 runs already done; running 1" in again.stdout, again.stdout
        log, _ = reference.communicate(timeout=600)
        assert reference.returncode == 0, log
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.communicate()

    # the finished run was not touched; the interrupted one trained each epoch once
    assert {k: v for k, v in _file_stamps(finished).items() if k in finished_stamp} == finished_stamp
    notebook = (interrupted / "run.ipynb").read_text()
    assert "finished run, returning its metrics" in notebook and "epoch 1/" not in notebook
    assert (interrupted / "metrics.json").stat().st_mtime_ns == metrics_stamp
    assert not (interrupted / "last.pt").exists()
    assert json.loads((interrupted / "status.json").read_text())["state"] == "done"
    assert {r["state"] for r in study_status("k", killed)} == {"done"}

    # the final numbers equal those of the uninterrupted study
    from pandas.testing import assert_frame_equal

    from xlm_core.report import load_study, transfer_table

    assert_frame_equal(transfer_table(load_study(straight / "k")), transfer_table(load_study(killed / "k")))
    for run in runs.iterdir():
        twin = straight / "k" / "runs" / run.name
        assert _comparable_metrics(twin / "metrics.json") == _comparable_metrics(run / "metrics.json")
        assert _history(twin / "history.csv") == _history(run / "history.csv")
        assert (twin / "predictions.csv").read_text() == (run / "predictions.csv").read_text()
    leftovers = [p.name for p in runs.rglob(".*") if p.name != ".lock"]
    assert not leftovers, leftovers


# --------------------------------------------------------------------------- 2. a Dask worker dies


class DyingRunner:
    """A runner (picklable) that SIGKILLs its own worker process while it executes a run whose
    label contains ``victim``, on its first ``deaths`` attempts (counted in ``state_dir``);
    every other call writes a complete metrics.json. Each call appends its run id to ``calls``."""

    def __init__(self, state_dir: Path, victim: str, deaths: int):
        self.state_dir, self.victim, self.deaths = str(state_dir), victim, deaths

    def __call__(self, task) -> None:
        state = Path(self.state_dir)
        with open(state / "calls.txt", "a") as fh:
            fh.write(task.run_id + "\n")
        if self.victim in task.label:
            attempts = len(list(state.glob("attempt-*")))
            if attempts < self.deaths:
                (state / f"attempt-{attempts}").write_text(str(os.getpid()))
                Path(task.run_dir, "metrics.json").write_text('{"mre": 1.0')  # half-written, then death
                os.kill(os.getpid(), signal.SIGKILL)
        Path(task.run_dir, "metrics.json").write_text(
            json.dumps({"config": task.parameters.get("config", {}), "mre": 1.0, "test": {}, "heldout": None}))


def _stand_in_profile(roots: dict[str, Path], name: str = "d") -> dict:
    """Two backbone folds and the chain imagenet>hand>head (4 runs) on stand-in roots."""
    return {
        "name": name, "data": "real", "seeds": [0],
        "datasets": {d: {"root": str(r)} for d, r in roots.items()},
        "run": {"epochs": 1, "train_size": [32, 32]},
        "backbones": {"dataset": "hand", "folds": 2, "pairs": [["unet", "vgg19"]]},
        "transfer": {"targets": ["head"], "chains": [["imagenet", "hand", "head"]], "matched_control": False},
    }


@pytest.mark.slow
def test_a_killed_dask_worker_fails_its_run_alone_and_a_rerun_completes(tmp_path):
    pytest.importorskip("distributed")
    import dask

    from xlm_core.study import profile_from_dict, run_study, study_status

    raw = _stand_in_profile(stand_in_roots(tmp_path))
    results = tmp_path / "r"
    victim = "transfer imagenet>hand seed"
    first_state, second_state = tmp_path / "s1", tmp_path / "s2"
    first_state.mkdir()
    second_state.mkdir()
    lines: list[str] = []
    # allowed-failures 1: a run whose worker dies is retried once, then reported failed
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        first = run_study(profile_from_dict(raw), results=results, executor="dask", workers=2, check=False,
                          runner=DyingRunner(first_state, victim, deaths=99), aggregate=False,
                          log=lines.append)
        plan = first.plan
        (hand,) = [r for r in plan.runs if r.label.startswith(victim)]
        head = plan.runs[-1]
        assert first.exit_code == 1
        assert [f["run_id"] for f in first.report.failed] == [hand.run_id]
        failed = first.report.failed[0]
        assert failed["notebook"] == str(plan.run_dir(hand.run_id) / "run.ipynb")
        assert "KilledWorker" in failed["error"] or "died" in failed["error"], failed["error"]
        assert [s["run_id"] for s in first.report.skipped] == [head.run_id]
        # the two backbone folds went on, each executed once: a worker's death can lose a
        # finished task's result, which Dask recomputes; run_task then finds the run done
        backbones = {r.run_id for r in plan.runs if r.kind == "backbone"}
        assert set(first.report.trained) | set(first.report.by_other) == backbones
        first_calls = (first_state / "calls.txt").read_text().split()
        assert sorted(c for c in first_calls if c in backbones) == sorted(backbones)
        assert len(list(first_state.glob("attempt-*"))) == 2  # retried once on a fresh worker
        text = "\n".join(lines)
        assert "FAILED" in text and failed["notebook"] in text
        states = {r["run_id"]: r["state"] for r in study_status("d", results)}
        assert states[hand.run_id] == "failed" and states[head.run_id] == "pending"
        # the half-written metrics.json of the dead attempt does not count as done
        assert (plan.run_dir(hand.run_id) / "metrics.json").read_text() == '{"mre": 1.0'

        # second invocation: the worker dies once more, the run is retried and the study completes
        lines.clear()
        second = run_study(profile_from_dict(raw), results=results, executor="dask", workers=2, check=False,
                           runner=DyingRunner(second_state, victim, deaths=1), aggregate=False,
                           log=lines.append)
    assert second.exit_code == 0, (second.report.failed, lines)
    assert sorted(second.report.trained) == sorted([hand.run_id, head.run_id])
    assert len(second.report.cached) == 2
    assert len(list(second_state.glob("attempt-*"))) == 1
    calls = (second_state / "calls.txt").read_text().split()
    assert sorted(calls) == sorted([hand.run_id, hand.run_id, head.run_id])
    assert {r["state"] for r in study_status("d", results)} == {"done"}


class _DeadWorkerFuture:
    """A Dask future whose workers died while the task was on them."""

    def result(self):
        raise RuntimeError("KilledWorker: attempted to run task on 2 different workers, all died")


def test_a_dead_worker_fails_the_run_it_executed_and_only_that_run(tmp_path):
    """status.json tells, per submission (``RunTask.attempt``), whether the run started on the
    worker that died: the run it executed failed; a run that only waited there is "lost" (and
    submitted again by execute_plan); one that finished before its result was lost is trained."""
    from xlm_core.study.executors import _result
    from xlm_core.study.runstate import run_state
    from xlm_core.study.runtask import RunTask

    def task(name: str) -> RunTask:
        (tmp_path / name).mkdir()
        return RunTask(name, str(tmp_path / name), name, {}, attempt=f"run-{name}-1")

    culprit, bystander, finished = task("culprit"), task("bystander"), task("finished")
    (tmp_path / "culprit" / "status.json").write_text(
        json.dumps({"state": "running", "attempt": "run-culprit-1"}))
    # the bystander's status is an earlier, interrupted invocation's
    (tmp_path / "bystander" / "status.json").write_text(
        json.dumps({"state": "running", "attempt": "run-bystander-0"}))
    (tmp_path / "finished" / "status.json").write_text(
        json.dumps({"state": "done", "attempt": "run-finished-1", "seconds": 2.5}))
    (tmp_path / "finished" / "metrics.json").write_text(json.dumps({"config": {}, "mre": 1.0, "test": {}}))

    failed = _result(_DeadWorkerFuture(), culprit)
    assert failed.state == "failed" and "KilledWorker" in failed.error
    assert run_state(culprit.run_dir)[0] == "failed"
    lost = _result(_DeadWorkerFuture(), bystander)
    assert lost.state == "lost" and run_state(bystander.run_dir)[0] == "pending"
    trained = _result(_DeadWorkerFuture(), finished)
    assert (trained.state, trained.seconds) == ("trained", 2.5)
    # no attempt named (the local executor's threads): the error is the run's own
    unnamed = task("unnamed")
    assert _result(_DeadWorkerFuture(), RunTask("unnamed", unnamed.run_dir, "unnamed", {})).state == "failed"


@pytest.mark.slow
def test_a_run_waiting_on_a_dying_worker_is_not_failed_for_its_death(tmp_path):
    """One single-thread worker, sent both runs: the bystander waits on the worker while the
    victim kills it, twice (allowed-failures 1), so Dask raises KilledWorker for both (the
    bystander in about half the tries; else it ran between the deaths, and its result, lost with
    a worker, may come back recomputed as "cached"). Only the victim failed."""
    pytest.importorskip("distributed")
    import dask

    from xlm_core.study.executors import DaskExecutor
    from xlm_core.study.runtask import RunTask

    (tmp_path / "state").mkdir()
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        executor = DaskExecutor(DyingRunner(tmp_path / "state", "victim", deaths=99), workers=1)
        try:
            for name in ("victim", "bystander"):
                executor.submit(RunTask(name, str(tmp_path / name), name, {"config": {}}))
            outcomes = []
            while executor.in_flight():
                outcomes += executor.wait()
        finally:
            executor.close()
    victim, bystander = sorted(outcomes, key=lambda o: o.run_id != "victim")
    assert victim.state == "failed" and "KilledWorker" in victim.error
    assert bystander.state in ("lost", "trained", "cached"), outcomes  # lost: submitted again
    calls = (tmp_path / "state" / "calls.txt").read_text().split()
    assert calls.count("bystander") == (bystander.state != "lost")


class _LosingExecutor:
    """An executor whose first submission of ``victim`` comes back "lost" (its worker died
    before it started); everything else is done at once by a fake run."""

    name, parallelism = "fake", 2

    def __init__(self, victim: str):
        self.victim, self.submitted, self._queue = victim, [], []

    def submit(self, task) -> None:
        self.submitted.append(task.run_id)
        self._queue.append(task)

    def in_flight(self) -> int:
        return len(self._queue)

    def wait(self):
        from xlm_core.study.runtask import RunOutcome

        task = self._queue.pop(0)
        if task.run_id == self.victim and self.submitted.count(task.run_id) == 1:
            return [RunOutcome(task.run_id, "lost", error="KilledWorker: ...")]
        Path(task.run_dir).mkdir(parents=True, exist_ok=True)
        Path(task.run_dir, "metrics.json").write_text(json.dumps({"config": {}, "mre": 1.0, "test": {}}))
        return [RunOutcome(task.run_id, "trained", 1.0)]

    def close(self) -> None:
        pass


def test_a_run_lost_with_another_runs_worker_is_submitted_again(tmp_path):
    from xlm_core.study import profile_from_dict
    from xlm_core.study.execute import execute_plan
    from xlm_core.study.runner import plan_study

    raw = _stand_in_profile(stand_in_roots(tmp_path))
    _, plan, _ = plan_study(profile_from_dict(raw), tmp_path / "r", log=lambda line: None)
    (hand,) = [r for r in plan.runs if r.label.startswith("transfer imagenet>hand seed")]
    executor = _LosingExecutor(hand.run_id)
    lines: list[str] = []
    report = execute_plan(plan, lambda: executor, log=lines.append)
    assert report.ok and sorted(report.trained) == sorted(r.run_id for r in plan.runs)
    assert executor.submitted.count(hand.run_id) == 2  # the dependant head ran after it
    assert "died before it started; submitted again" in "\n".join(lines)


# --------------------------------------------------------------------------- 3. two runners race

RACE_NOTEBOOK = '''# %% tags=["parameters"]
config = {}
run_id = ""
calls = ""

# %%
import json, os, time
from pathlib import Path
out = config["out"]
with open(calls, "a") as fh:  # O_APPEND: one line per execution, across processes
    fh.write(run_id + "\\n")
Path(out, "checkpoint.pt").write_text("partial")
time.sleep(1.5)
Path(out, "metrics.json").write_text(json.dumps({"config": {"run_id": run_id}, "mre": 1.0, "test": {}}))
'''


@pytest.mark.slow
def test_two_study_processes_on_one_results_folder(tmp_path):
    roots = stand_in_roots(tmp_path)
    raw = _stand_in_profile(roots, name="race")
    raw["transfer"]["chains"] = [["imagenet", "head"]]  # three independent runs
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    calls = tmp_path / "calls.txt"
    (nbs / "train_evaluate.py").write_text(RACE_NOTEBOOK.replace('calls = ""', f"calls = {str(calls)!r}"))
    profile = tmp_path / "race.yaml"
    profile.write_text(yaml.safe_dump(raw))
    results = tmp_path / "r"
    command = _xlm("study", "run", str(profile), "--results", str(results), "--notebooks", str(nbs),
                   "--no-aggregate", "--no-preflight")  # stand-in data: the preflight would refuse it
    env = _env(tmp_path)
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ids = calls.read_text().split()
    assert len(ids) == 3 and len(set(ids)) == 3, ids  # every run executed exactly once
    text = "\n".join(outputs)
    assert "another runner" in text, text  # the second one waited for / skipped the first's runs
    for run_dir in (results / "race" / "runs").iterdir():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["config"]["run_id"] == run_dir.name
        json.loads((run_dir / "run.ipynb").read_text())  # whole notebooks
        assert json.loads((run_dir / "status.json").read_text())["state"] == "done"
        assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    json.loads((results / "race" / "study.json").read_text())


# --------------------------------------------------------------------------- 6. invalid profiles, CLI


def _valid_profile(tmp_path: Path) -> dict:
    roots = stand_in_roots(tmp_path)
    return _stand_in_profile(roots, name="v")


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda p: p.update(epochs=3), ["epochs", "unknown key", "allowed"]),
        (lambda p: p["run"].update(batch_size="two"), ["run.batch_size", "integer"]),
        (lambda p: p["run"].update(train_size="64x64"), ["run.train_size", "should be a list", "'64x64'"]),
        (lambda p: p["transfer"].update(encoder="resnet9000"), ["resnet9000", "resnet18"]),
        (lambda p: p["backbones"].update(pairs=[["unet3d", "vgg19"]]), ["backbones.pairs[0]", "unet3d",
                                                                         "unetplusplus"]),
        (lambda p: p["transfer"].update(chains=[["imagenet", "head", "hand", "head"]]),
         ["transfer.chains[0]", "'head' twice"]),
        (lambda p: p["datasets"]["hand"].update(options="wrist"), ["datasets.hand.options"]),
    ],
    ids=["unknown_key", "wrong_type", "bad_size", "unknown_encoder", "unknown_arch", "chain_twice",
         "options_not_a_mapping"],
)
def test_invalid_profile_is_refused_before_any_work(edit, words, tmp_path, capsys):
    raw = _valid_profile(tmp_path)
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    results = tmp_path / "results"
    assert xlm_main(["study", "run", str(path), "--results", str(results), "--no-aggregate"]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "Traceback" not in err
    for word in words:
        assert word in err, err
    assert not results.exists() or not any(results.rglob("*")), "something was written before validation"
