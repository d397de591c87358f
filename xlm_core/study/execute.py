"""Executing the runs of a plan: the DAG loop.

Division of labour:

- :func:`~xlm_core.study.runtask.run_task` does one run under its lock
  (:mod:`xlm_core.study.runtask`); :mod:`xlm_core.study.runstate` says where a run stands;
- an *executor* (:mod:`xlm_core.study.executors`: local, Dask) runs tasks and hands back
  their outcomes as they finish;
- :func:`execute_plan` submits a run once every run it depends on is done, reports
  progress with an ETA (:mod:`xlm_core.study.progress`), skips the dependants of a failed run,
  waits for runs that another ``xlm study run`` holds, and deletes the checkpoints nothing needs
  any more (:mod:`xlm_core.study.pruning`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from xlm_core.study.executors import DaskExecutor, LocalExecutor
from xlm_core.study.plan import Plan, PlannedRun
from xlm_core.study.progress import Progress, format_seconds
from xlm_core.study.pruning import checkpoints_to_keep, prune_checkpoints
from xlm_core.study.resources import auto_workers  # noqa: F401 - notebooks/ablation.py imports it from here
from xlm_core.study.runstate import run_done
from xlm_core.study.runtask import RunTask

#: times a run is submitted again after its Dask worker died before the run started
MAX_LOST = 3


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
