"""One run, wherever it is called (this process, a thread, a Dask worker).

:func:`run_task` takes the run's lock (:func:`xlm_core.io.exclusive_lock` on
``runs/<id>/.lock``, without waiting), skips the run if it is done, else calls the *runner*
(by default :class:`PapermillRunner`, executing ``notebooks/train_evaluate.py`` into
``runs/<id>/run.ipynb``) and records the outcome in ``status.json``.

A runner is any picklable callable ``runner(task: RunTask) -> None`` that raises on
failure; tests inject a fake one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from xlm_core import XLMError
from xlm_core.io import atomic_write_json, exclusive_lock
from xlm_core.study.notebooks import NotebookFailed, execute_notebook, shutdown_reused_kernels
from xlm_core.study.runstate import (
    LOCK_NAME,
    NOTEBOOK_NAME,
    STATUS_NAME,
    first_done_seconds,
    metrics_complete,
    read_status,
    run_done,
    utc_now,
)


@dataclass(frozen=True)
class RunTask:
    """What a worker needs to do one run. ``parameters``: the run notebook's parameters
    (``config``: the run's :meth:`RunConfig.to_dict`, and ``run_id``, ``study``, ``profile_note``).
    ``attempt``: names this submission (the Dask executor's key); :func:`run_task` writes it
    into status.json when the run starts, so a dead worker's run is told from its bystanders."""

    run_id: str
    run_dir: str
    label: str
    parameters: dict
    attempt: str = ""


@dataclass
class RunOutcome:
    """How one attempt at a run ended.

    ``state``: "trained" (executed now), "cached" (already done; ``by_other``: another
    runner finished it meanwhile), "failed", "busy" (another runner holds its lock),
    "skipped" (a run it depends on failed), "lost" (its Dask worker died before the run
    started: submitted again).
    """

    run_id: str
    state: str
    seconds: float = 0.0
    notebook: str | None = None
    error: str | None = None
    holder: str | None = None
    by_other: bool = False


@dataclass(frozen=True)
class PapermillRunner:
    """Execute the run notebook (py:percent) into ``<run_dir>/run.ipynb`` with the task's parameters."""

    notebook: str
    cwd: str | None = None  # default: the notebook's folder (as when opened in Jupyter)
    kernel_name: str = "python3"
    timeout_s: float | None = None  # per cell
    #: one kernel per executing thread for the notebooks it runs one after another
    #: (:mod:`xlm_core.study.notebooks`); :meth:`close` stops them
    reuse_kernel: bool = False

    def __call__(self, task: RunTask) -> None:
        execute_notebook(
            self.notebook,
            Path(task.run_dir) / NOTEBOOK_NAME,
            task.parameters,
            cwd=self.cwd or str(Path(self.notebook).resolve().parent),
            kernel_name=self.kernel_name,
            timeout_s=self.timeout_s,
            reuse_kernel=self.reuse_kernel,
        )

    def close(self) -> None:
        """Stop the kernels kept for reuse (none unless ``reuse_kernel``)."""
        if self.reuse_kernel:
            shutdown_reused_kernels()


Runner = Callable[[RunTask], None]


def run_task(task: RunTask, runner: Runner, gpu_count: int = 0) -> RunOutcome:
    """Do one run under its lock; never raises for a failing run (see :class:`RunOutcome`).

    ``gpu_count`` > 0: this is one of ``gpu_count`` Dask workers of a local cluster, one per
    GPU; the run is pinned to ``cuda:<worker index>``.
    """
    run_dir = Path(task.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:  # leaving it releases the lock
        try:
            lock = stack.enter_context(exclusive_lock(run_dir / LOCK_NAME, timeout_s=0, what="the run"))
        except XLMError:  # another runner holds it; it wrote who it is into the lock file
            holder = (run_dir / LOCK_NAME).read_text().strip()
            return RunOutcome(task.run_id, "busy", holder=holder or "another process")
        if run_done(run_dir):  # finished by another runner while this one waited
            return RunOutcome(task.run_id, "cached", by_other=True)
        _remove_leftover_temporaries(run_dir)  # of a writer killed mid-write: never read, only big
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}: {task.label}"
        os.ftruncate(lock, 0)
        os.pwrite(lock, f"{holder}\n".encode(), 0)
        notebook = str(run_dir / NOTEBOOK_NAME)
        first_done = first_done_seconds(read_status(run_dir))
        atomic_write_json(run_dir / STATUS_NAME, {"state": "running", "started": utc_now(), "holder": holder,
                                                  "attempt": task.attempt, "first_done_seconds": first_done})
        parameters = dict(task.parameters)
        if gpu_count > 0:
            parameters["config"] = {**parameters["config"], "device": f"cuda:{_worker_index() % gpu_count}"}
        start = time.perf_counter()
        error = None
        try:
            runner(replace(task, parameters=parameters))
        except NotebookFailed as exc:
            error = str(exc)
            notebook = str(exc.notebook) if exc.notebook else notebook
        except Exception as exc:  # noqa: BLE001 - any failure of a run is reported, not raised
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        if error is None and not metrics_complete(run_dir):
            error = "the run finished without writing a complete metrics.json"
        status = {"state": "failed" if error else "done", "seconds": round(seconds, 3),
                  "finished": utc_now(), "notebook": notebook, "error": error, "attempt": task.attempt,
                  "first_done_seconds": first_done if first_done is not None or error else round(seconds, 3)}
        atomic_write_json(run_dir / STATUS_NAME, status)
        os.ftruncate(lock, 0)
        if error:
            return RunOutcome(task.run_id, "failed", seconds, notebook, error)
        return RunOutcome(task.run_id, "trained", seconds, notebook)


def _remove_leftover_temporaries(run_dir: Path) -> None:
    """Delete the temporaries of atomic writes (``.NAME.*.tmp``, ``.run.*.ipynb``) that a killed
    writer left behind. Called under the run's lock, so no live writer owns them."""
    for pattern in (".*.tmp", f".{Path(NOTEBOOK_NAME).stem}.*.ipynb"):
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)


def _worker_index() -> int:
    """Index of the current Dask worker (LocalCluster names them 0, 1, ...); 0 elsewhere."""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return 0
    try:
        return int(name)
    except (TypeError, ValueError):
        return sum(map(ord, str(name)))
