"""Deleting checkpoints that no run of the plan starts from any more (``keep_checkpoints``)."""

from __future__ import annotations

from xlm_core.study.plan import Plan


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
