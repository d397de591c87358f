"""Where a run stands, read from its folder: done, running (its lock is held), failed, pending.

A run's folder ``runs/<id>/`` holds ``metrics.json`` (written when training ends),
``status.json`` (the last attempt: running, done or failed; written by
:func:`xlm_core.study.runtask.run_task`) and ``.lock`` (held while a runner works on it, with
who holds it written inside).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from xlm_core.io import lock_is_held

LOCK_NAME = ".lock"
STATUS_NAME = "status.json"
NOTEBOOK_NAME = "run.ipynb"
METRICS_REQUIRED = ("config", "mre", "test")


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
    return metrics_complete(run_dir) and (read_status(Path(run_dir)).get("state")
                                          not in ("failed", "running"))


def lock_holder(run_dir: str | Path) -> str | None:
    """Who holds the run's lock ("pid N on HOST since T: label"), or None if nobody does."""
    path = Path(run_dir) / LOCK_NAME
    if not path.is_file() or not lock_is_held(path):
        return None
    return path.read_text().strip() or "another process"


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
    status = read_status(run_dir)
    if status.get("state") == "failed":
        return "failed", f"{status.get('error', '')} (notebook: {status.get('notebook')})"
    if status.get("state") == "running":
        if metrics_complete(run_dir):
            return "pending", ("interrupted after training finished (metrics.json written, no process "
                               "holds its lock): its notebook is executed again, without training")
        return "pending", ("interrupted earlier (no process holds its lock): training resumes from "
                           "its last checkpoint, if any")
    return "pending", ""


def read_status(run_dir: Path) -> dict:
    """The run's status.json (its last attempt), ``{}`` when missing or unreadable."""
    try:
        status = json.loads((run_dir / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def first_done_seconds(status: dict) -> float | None:
    """Seconds of the attempt that first finished the run (the one that trained it), kept
    across later attempts (a run scored again with a new decoder executes its notebook again)."""
    if status.get("first_done_seconds") is not None:
        return float(status["first_done_seconds"])
    if status.get("state") == "done" and status.get("seconds") is not None:
        return float(status["seconds"])
    return None


def utc_now() -> str:
    """Now, in UTC, to the second (ISO 8601): the times status.json and the lock file hold."""
    return datetime.now(UTC).isoformat(timespec="seconds")
