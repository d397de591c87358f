"""The progress lines of ``xlm study run``: one per finished run, with an ETA and the disk used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xlm_core.study.resources import disk_usage_bytes


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


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
