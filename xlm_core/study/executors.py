"""Executors run :func:`~xlm_core.study.runtask.run_task` and hand back the outcomes as they
finish: :class:`LocalExecutor` (this process, one run at a time or a thread pool) and
:class:`DaskExecutor` (a dask.distributed cluster, local or at a scheduler's address).

Each has ``name``, ``parallelism``, ``submit(task)``, ``in_flight()``, ``wait()`` (the
outcomes finished since), ``close()`` and ``abort()`` (Ctrl-C).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil

from xlm_core import XLMError
from xlm_core.io import atomic_write_json
from xlm_core.study.resources import cuda_device_count, default_cpu_workers
from xlm_core.study.runstate import (
    NOTEBOOK_NAME,
    STATUS_NAME,
    lock_holder,
    read_status,
    run_done,
    utc_now,
)
from xlm_core.study.runtask import Runner, RunOutcome, RunTask, run_task

#: seconds ``xlm study run --executor dask --scheduler ADDR`` waits for a first worker
DEFAULT_WORKER_TIMEOUT_S = 120.0
#: seconds to reach a scheduler's address before the study writes anything
CONNECT_TIMEOUT_S = 5.0


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
    of its own (a notebook kernel and its data-loader workers). Returns the pids signalled."""
    pids = sorted(child.pid for child in psutil.Process().children())
    own_group = os.getpgrp()
    for pid in pids:
        try:
            group = os.getpgid(pid)
            if group == pid and group != own_group:
                os.killpg(group, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue
    return pids


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
        status = read_status(run_dir)
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
                              {"state": "failed", "finished": utc_now(), "notebook": notebook,
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
