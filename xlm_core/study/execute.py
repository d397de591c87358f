"""Executing the runs of a plan: per-run locks, run states, executors (local, Dask), the DAG loop.

Division of labour:

- :func:`run_task` does one run wherever it is called (this process, a thread, a Dask
  worker): take the run's lock (``fcntl.flock`` on ``runs/<id>/.lock``, non-blocking), skip
  it if it is done, else call the *runner* (by default :class:`PapermillRunner`, executing
  ``notebooks/train_evaluate.py`` into ``runs/<id>/run.ipynb``) and record the outcome.
- an *executor* (:class:`LocalExecutor`, :class:`DaskExecutor`) runs tasks and hands back
  their outcomes as they finish;
- :func:`execute_plan` submits a run once every run it depends on is done, reports
  progress with an ETA, skips the dependants of a failed run, and waits for runs that
  another ``xlm study run`` holds.

A runner is any picklable callable ``runner(task: RunTask) -> None`` that raises on
failure; tests inject a fake one.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from xlm_core import XLMError
from xlm_core.io import atomic_write_json
from xlm_core.study.notebooks import NotebookFailed, execute_notebook, shutdown_reused_kernels
from xlm_core.study.plan import Plan, PlannedRun

LOCK_NAME = ".lock"
STATUS_NAME = "status.json"
NOTEBOOK_NAME = "run.ipynb"
METRICS_REQUIRED = ("config", "mre", "test")
#: seconds ``xlm study run --executor dask --scheduler ADDR`` waits for a first worker
DEFAULT_WORKER_TIMEOUT_S = 120.0
#: seconds to reach a scheduler's address before the study writes anything
CONNECT_TIMEOUT_S = 5.0
#: times a run is submitted again after its Dask worker died before the run started
MAX_LOST = 3


# --------------------------------------------------------------------------- run state


def metrics_complete(run_dir: str | Path) -> bool:
    """True when ``run_dir/metrics.json`` parses, holds the keys a finished run writes and was
    scored with the decoder the run's loss gets now (else the run's notebook executes again,
    and the run is scored again from its checkpoint without training)."""
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not (isinstance(metrics, dict) and all(k in metrics for k in METRICS_REQUIRED)):
        return False
    from xlm_core.metrics import scores_are_current
    from xlm_core.registry import decoder_is_current

    return decoder_is_current(metrics) and scores_are_current(metrics)


def run_done(run_dir: str | Path) -> bool:
    """A run is done when its metrics.json is complete and its last attempt ended well: its
    status is neither "failed" nor still "running".

    A notebook that failed after training wrote metrics.json, and an attempt killed after
    metrics.json but before its notebook was renamed onto run.ipynb (its status still says
    "running"), are executed again: the training returns the finished run's metrics without
    training, and the notebook is completed (docs/decisions.md, "Kills at named points").
    """
    return metrics_complete(run_dir) and (_read_status(Path(run_dir)).get("state")
                                          not in ("failed", "running"))


def lock_holder(run_dir: str | Path) -> str | None:
    """Who holds the run's lock ("pid N on HOST since T: label"), or None if nobody does."""
    path = Path(run_dir) / LOCK_NAME
    if not path.is_file():
        return None
    with open(path) as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return fh.read().strip() or "another process"
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return None


def run_state(run_dir: str | Path) -> tuple[str, str]:
    """``(state, detail)``: state is "done", "running", "failed" or "pending".

    done: :func:`run_done`; running: its lock is held (detail: by whom); failed: the
    last attempt failed (detail: the error and the executed notebook); pending otherwise.
    """
    run_dir = Path(run_dir)
    if run_done(run_dir):
        return "done", ""
    holder = lock_holder(run_dir)
    if holder is not None:
        return "running", holder
    status = _read_status(run_dir)
    if status.get("state") == "failed":
        return "failed", f"{status.get('error', '')} (notebook: {status.get('notebook')})"
    if status.get("state") == "running":
        if metrics_complete(run_dir):
            return "pending", ("interrupted after training finished (metrics.json written, no process "
                               "holds its lock): its notebook is executed again, without training")
        return "pending", ("interrupted earlier (no process holds its lock): training resumes from "
                           "its last checkpoint, if any")
    return "pending", ""


def _read_status(run_dir: Path) -> dict:
    try:
        status = json.loads((run_dir / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def _first_done_seconds(status: dict) -> float | None:
    """Seconds of the attempt that first finished the run (the one that trained it), kept
    across later attempts (a run scored again with a new decoder executes its notebook again)."""
    if status.get("first_done_seconds") is not None:
        return float(status["first_done_seconds"])
    if status.get("state") == "done" and status.get("seconds") is not None:
        return float(status["seconds"])
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- one run


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
    with open(run_dir / LOCK_NAME, "a+") as fh:  # closing it releases the lock
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            return RunOutcome(task.run_id, "busy", holder=fh.read().strip() or "another process")
        if run_done(run_dir):  # finished by another runner while this one waited
            return RunOutcome(task.run_id, "cached", by_other=True)
        _remove_leftover_temporaries(run_dir)  # of a writer killed mid-write: never read, only big
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {_now()}: {task.label}"
        fh.seek(0)
        fh.truncate()
        fh.write(holder + "\n")
        fh.flush()
        notebook = str(run_dir / NOTEBOOK_NAME)
        first_done = _first_done_seconds(_read_status(run_dir))
        atomic_write_json(run_dir / STATUS_NAME, {"state": "running", "started": _now(), "holder": holder,
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
                  "finished": _now(), "notebook": notebook, "error": error, "attempt": task.attempt,
                  "first_done_seconds": first_done if first_done is not None or error else round(seconds, 3)}
        atomic_write_json(run_dir / STATUS_NAME, status)
        fh.seek(0)
        fh.truncate()
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


# --------------------------------------------------------------------------- executors


class LocalExecutor:
    """Runs tasks in this process: one at a time (``workers=1``) or in a thread pool.

    Threads suffice for parallel notebooks: each notebook's kernel is its own process.
    """

    name = "local"

    def __init__(self, runner: Runner, workers: int = 1):
        self.runner = runner
        self.parallelism = max(1, int(workers))
        self._queue: list[RunTask] = []
        self._pool = cf.ThreadPoolExecutor(self.parallelism) if self.parallelism > 1 else None
        self._futures: dict[cf.Future, RunTask] = {}

    def submit(self, task: RunTask) -> None:
        if self._pool is None:
            self._queue.append(task)
        else:
            self._futures[self._pool.submit(run_task, task, self.runner)] = task

    def in_flight(self) -> int:
        return len(self._queue) + len(self._futures)

    def wait(self) -> list[RunOutcome]:
        """Block until at least one submitted task finished; return the finished ones."""
        if self._pool is None:
            return [run_task(self._queue.pop(0), self.runner)] if self._queue else []
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        return [_result(f, self._futures.pop(f)) for f in done]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        close_runner = getattr(self.runner, "close", None)
        if callable(close_runner):
            close_runner()

    def abort(self) -> None:
        """Ctrl-C: stop the running notebooks' kernels (each runs in its own session, out of
        reach of the terminal's interrupt), drop the queued runs, do not wait.

        SIGKILL, not SIGTERM: a kernel that handles SIGTERM while a cell runs closes its sockets
        under its own message handler and prints a ZMQ traceback on the terminal it shares with
        us. Nothing is lost: every file a run writes appears whole by rename, and a run resumes
        from its last finished epoch."""
        stop_child_processes(signal.SIGKILL)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._queue.clear()


def stop_child_processes(sig: int = signal.SIGTERM) -> list[int]:
    """Send ``sig`` to every child process of this one, with its process group when it leads one
    of its own (a notebook kernel and its data-loader workers). Linux (``/proc``); elsewhere a
    no-op. Returns the pids signalled."""
    pids: set[int] = set()
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids.update(int(p) for p in children.read_text().split())
        except OSError:
            continue
    own_group = os.getpgrp()
    for pid in sorted(pids):
        try:
            group = os.getpgid(pid)
            if group == pid and group != own_group:
                os.killpg(group, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue
    return sorted(pids)


class DaskExecutor:
    """Runs tasks on a dask.distributed cluster: an existing one (``scheduler`` address) or a
    LocalCluster sized to this machine (one worker per CUDA GPU, else ``workers`` CPU workers),
    ``processes=True, threads_per_worker=1``.
    """

    name = "dask"

    def __init__(self, runner: Runner, scheduler: str | None = None, workers: int | None = None,
                 gpus: int | None = None, worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S,
                 log: Callable[[str], None] = print):
        from distributed import Client, LocalCluster

        self.runner = runner
        self._cluster = None
        self.gpu_count = 0
        if scheduler:
            check_scheduler_reachable(scheduler)
            try:
                self.client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
            except OSError as exc:
                raise XLMError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
            self.parallelism = self._wait_for_workers(scheduler, worker_timeout_s, log)
        else:
            gpus = cuda_device_count() if gpus is None else gpus
            if gpus > 0:
                n = gpus
                self.gpu_count = gpus
            else:
                n = workers or default_cpu_workers()
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            self.client = Client(self._cluster)
            self.parallelism = n
        self._futures: dict = {}

    def _wait_for_workers(self, scheduler: str, timeout_s: float, log: Callable[[str], None]) -> int:
        """The scheduler's real thread count; with no worker yet, wait up to ``timeout_s``
        (saying so), then XLMError naming the scheduler."""
        threads = _scheduler_threads(self.client)
        if threads == 0:
            log(f"dask scheduler at {scheduler} has no worker yet; waiting up to {timeout_s:g} s "
                "for one (--worker-timeout)")
            deadline = time.monotonic() + timeout_s
            while threads == 0 and time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                threads = _scheduler_threads(self.client)
        if threads == 0:
            self.client.close()
            raise XLMError(f"no Dask worker joined the scheduler at {scheduler} within {timeout_s:g} s: "
                           f"start workers (`dask worker {scheduler}`) or raise --worker-timeout")
        return threads

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def submit(self, task: RunTask) -> None:
        key = f"run-{task.run_id}-{time.monotonic_ns()}"
        task = replace(task, attempt=key)
        future = self.client.submit(run_task, task, self.runner, self.gpu_count, pure=False, key=key)
        self._futures[future] = task

    def in_flight(self) -> int:
        return len(self._futures)

    def wait(self) -> list[RunOutcome]:
        from distributed import wait

        if not self._futures:
            return []
        done, _ = wait(list(self._futures), return_when="FIRST_COMPLETED")
        return [_result(f, self._futures.pop(f)) for f in done]

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def abort(self) -> None:
        """Ctrl-C: cancel the submitted runs (a local cluster's workers stop with it)."""
        with contextlib.suppress(Exception):  # the client may already be gone
            self.client.cancel(list(self._futures))
        self._futures.clear()


def _result(future, task: RunTask) -> RunOutcome:
    """A finished future's outcome. :func:`run_task` never raises, so an exception is the
    infrastructure's (Dask's KilledWorker: workers died while the task was on them), and
    status.json says what the run did under this attempt (``task.attempt``):

    - it started and is still "running": its worker died under it, the run failed;
    - it finished (its result was lost with a worker afterwards): trained;
    - it never started (it only waited on a worker that another run killed): "lost", and
      :func:`execute_plan` submits it again; it is not failed for another run's death.
    """
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
        run_dir = Path(task.run_dir)
        notebook = str(run_dir / NOTEBOOK_NAME)
        status = _read_status(run_dir)
        # no attempt named (the local executor: no bystanders): the run counts as started
        started = not task.attempt or status.get("attempt") == task.attempt
        if run_done(run_dir):
            if started:
                return RunOutcome(task.run_id, "trained", float(status.get("seconds") or 0.0), notebook)
            return RunOutcome(task.run_id, "cached", by_other=True)
        if not started:
            return RunOutcome(task.run_id, "lost", error=error)
        # the worker died under the run: its status still says "running". Record the failure
        # unless another runner has taken the run since (it holds the lock, and writes status)
        if lock_holder(run_dir) is None:
            atomic_write_json(run_dir / STATUS_NAME,
                              {"state": "failed", "finished": _now(), "notebook": notebook,
                               "error": error, "attempt": task.attempt})
        return RunOutcome(task.run_id, "failed", error=error, notebook=notebook)


def _scheduler_threads(client) -> int:
    """Threads of the workers connected to ``client``'s scheduler now (0 with none)."""
    workers = client.scheduler_info().get("workers", {})
    return int(sum(int(w.get("nthreads", 1)) for w in workers.values()))


def check_scheduler_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """XLMError in one line when nothing accepts TCP connections at a Dask scheduler ``address``
    (``tcp://HOST:PORT``, ``HOST:PORT``) within ``timeout_s``; called before any data is written."""
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.port is None:
        raise XLMError(f"Dask scheduler address {address!r}: expected tcp://HOST:PORT")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise XLMError(f"no Dask scheduler at {address} ({exc.strerror or exc}); start one with "
                       f"`dask scheduler` or check --scheduler") from None


def cuda_device_count() -> int:
    """CUDA GPUs visible to this process (0 without torch or CUDA)."""
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0


#: resident memory one CPU run may take (a UNet++/ResNeXt101 run at 64x64 peaks near 2.3 GB)
RUN_MEMORY_BYTES = 3 * 1024**3


def auto_workers(threads: int | None) -> int:
    """Parallel runs for ``workers: auto``: one per ``threads`` cores (one per core when None),
    at most as many as the memory holds at :data:`RUN_MEMORY_BYTES` each, at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    by_cores = max(1, cores // max(1, threads or 1))
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return by_cores
    return max(1, min(by_cores, memory // RUN_MEMORY_BYTES))


def disk_usage_bytes(folder: str | Path) -> int:
    """Bytes of the regular files under ``folder`` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed meanwhile (a temporary of a finished write)
                pass
    return total


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def prune_checkpoints(plan: Plan, done: set[str], keep: set[str]) -> int:
    """Delete ``checkpoint.pt`` of every done run outside ``keep`` whose dependants are all done
    (no run of the plan starts from it any more). Returns the bytes freed.

    A deleted run stays done (its metrics, predictions and notebook remain); scoring it again
    with a changed decoder then trains it again.
    """
    freed = 0
    for rid in done:
        if rid in keep or not all(d in done for d in plan.dependants(rid)):
            continue
        path = plan.run_dir(rid) / "checkpoint.pt"
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed += size
    return freed


def checkpoints_to_keep(plan: Plan, policy: str) -> set[str] | None:
    """Run ids whose checkpoints stay under ``policy`` (None: all of them stay).

    ``needed``: the first stage of every transfer chain (the book's pipeline and "beyond"
    pages load these models: :func:`xlm_core.report.pick_run`); other checkpoints go once the
    runs that start from them are done.
    """
    if policy == "all":
        return None
    if policy != "needed":
        raise ValueError(f"unknown keep_checkpoints policy {policy!r}")
    return {r.run_id for r in plan.runs if r.kind == "transfer" and not r.depends_on}


def default_cpu_workers() -> int:
    """CPU workers for a LocalCluster: a run uses several cores (torch threads), so cores // 4."""
    return max(1, (os.cpu_count() or 1) // 4)


# --------------------------------------------------------------------------- the DAG loop


@dataclass
class ExecutionReport:
    """What :func:`execute_plan` did. Lists hold run ids; ``failed``/``skipped`` hold dicts."""

    total: int
    cached: list[str] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)
    by_other: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


class Progress:
    """Prints one line per finished run: ``[done/total]``, what happened, an ETA, and the disk
    the study's results folder uses so far (``disk_root``, when given)."""

    def __init__(self, total: int, parallelism: int, log: Callable[[str], None] = print,
                 disk_root: str | Path | None = None):
        self.total, self.parallelism, self.log = total, max(1, parallelism), log
        self.disk_root = disk_root
        self.finished = 0
        self.durations: list[float] = []
        self.remaining = 0  # runs still to execute

    def eta_s(self) -> float | None:
        if not self.durations or self.remaining <= 0:
            return None
        mean = sum(self.durations) / len(self.durations)
        return mean * self.remaining / min(self.parallelism, self.remaining)

    def line(self, what: str) -> None:
        eta = self.eta_s()
        tail = f" | ETA {format_seconds(eta)}" if eta is not None else ""
        if self.disk_root is not None:
            tail += f" | disk {format_bytes(disk_usage_bytes(self.disk_root))}"
        self.log(f"[{self.finished}/{self.total}] {what}{tail}")


def format_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def make_task(plan: Plan, run: PlannedRun, profile_note: str) -> RunTask:
    """The notebook parameters of a run: ``config`` (its RunConfig, JSON form), and run_id,
    study, profile_note."""
    params = {"config": dict(run.config), "run_id": run.run_id, "study": plan.study, "profile_note": profile_note}
    return RunTask(run.run_id, str(plan.run_dir(run.run_id)), run.label, params)


def execute_plan(
    plan: Plan,
    make_executor: Callable[[], LocalExecutor | DaskExecutor],
    profile_note: str = "",
    log: Callable[[str], None] = print,
    poll_s: float = 2.0,
    keep_checkpoints: str = "all",
) -> ExecutionReport:
    """Run every run of ``plan`` that is not done, each after the runs it depends on.

    ``keep_checkpoints``: ``all``, or ``needed`` (:func:`checkpoints_to_keep`; the others are
    deleted as soon as no run still needs them, :func:`prune_checkpoints`).

    Done runs (complete metrics.json) are never submitted, and no executor is started when
    nothing is left to do. A failed run is reported with its executed notebook; the runs
    depending on it are skipped; independent runs go on. A run whose lock another runner
    holds is retried every ``poll_s`` seconds (its dependants wait) until that runner ends.
    """
    start = time.perf_counter()
    runs = plan.by_id()
    report = ExecutionReport(total=len(plan.runs))
    done: set[str] = set()
    for run in plan.runs:
        if run_done(plan.run_dir(run.run_id)):
            done.add(run.run_id)
            report.cached.append(run.run_id)
    keep = checkpoints_to_keep(plan, keep_checkpoints)

    def prune() -> None:
        if keep is not None:
            prune_checkpoints(plan, done, keep)

    todo = [r.run_id for r in plan.runs if r.run_id not in done]
    if not todo:
        prune()
        report.seconds = time.perf_counter() - start
        return report
    executor = make_executor()
    progress = Progress(len(plan.runs), executor.parallelism, log, disk_root=plan.results_dir)
    progress.finished = len(done)
    progress.remaining = len(todo)
    log(f"{len(done)} of {len(plan.runs)} runs already done; running {len(todo)} "
        f"on the {executor.name} executor ({executor.parallelism} at a time)")
    waiting = list(todo)  # not yet submitted, in dependency order
    submitted: set[str] = set()
    deferred: dict[str, float] = {}  # busy elsewhere -> time of the next try
    announced_busy: set[str] = set()
    lost: dict[str, int] = {}  # submissions whose worker died before the run started
    blocked: set[str] = set()  # failed or skipped
    try:
        while waiting or executor.in_flight() or deferred:
            now = time.monotonic()
            for rid in [r for r, t in deferred.items() if t <= now]:
                del deferred[rid]
                executor.submit(make_task(plan, runs[rid], profile_note))
            for rid in list(waiting):
                if all(d in done for d in runs[rid].depends_on):
                    waiting.remove(rid)
                    submitted.add(rid)
                    executor.submit(make_task(plan, runs[rid], profile_note))
            if not executor.in_flight():
                if deferred:
                    time.sleep(max(0.0, min(deferred.values()) - time.monotonic()))
                    continue
                if waiting:  # cannot happen for a valid plan: dependencies outside it
                    for rid in waiting:
                        report.skipped.append({"run_id": rid, "label": runs[rid].label,
                                               "because": "a run it depends on is not in the plan"})
                    break
                continue
            for outcome in executor.wait():
                rid = outcome.run_id
                run = runs[rid]
                if outcome.state == "lost":
                    lost[rid] = lost.get(rid, 0) + 1
                    if lost[rid] <= MAX_LOST:
                        log(f"    {rid} ({run.label}) waited on a worker that died before it started; "
                            "submitted again")
                        executor.submit(make_task(plan, run, profile_note))
                        continue
                    outcome = replace(outcome, state="failed", error=f"{outcome.error} (its workers died "
                                      f"{lost[rid]} times before it started)")
                if outcome.state == "busy":
                    deferred[rid] = time.monotonic() + poll_s
                    if rid not in announced_busy:
                        announced_busy.add(rid)
                        log(f"    {rid} ({run.label}) is held by another runner "
                            f"({outcome.holder}); waiting for it")
                    continue
                progress.finished += 1
                progress.remaining -= 1
                if outcome.state in ("trained", "cached"):
                    done.add(rid)
                    prune()
                    if outcome.state == "trained":
                        report.trained.append(rid)
                        progress.durations.append(outcome.seconds)
                        progress.line(f"done   {rid} {run.label} ({format_seconds(outcome.seconds)})")
                    else:
                        report.by_other.append(rid)
                        progress.line(f"done   {rid} {run.label} (by another runner)")
                    continue
                blocked.add(rid)
                report.failed.append({"run_id": rid, "label": run.label, "error": outcome.error,
                                      "notebook": outcome.notebook})
                progress.line(f"FAILED {rid} {run.label}: {outcome.error}\n"
                              f"       executed notebook: {outcome.notebook}")
                for dep in plan.dependants(rid):
                    if dep in waiting:
                        waiting.remove(dep)
                        blocked.add(dep)
                        progress.finished += 1
                        progress.remaining -= 1
                        report.skipped.append({"run_id": dep, "label": runs[dep].label,
                                               "because": f"depends on failed run {rid}"})
                        progress.line(f"skip   {dep} {runs[dep].label}: depends on failed run {rid}")
    except KeyboardInterrupt:
        executor.abort()  # then the CLI prints one line with the resume hint
        raise
    finally:
        executor.close()
    report.seconds = time.perf_counter() - start
    return report
