"""What this machine offers a study: CUDA GPUs, parallel runs for its cores and memory, and the
disk a results folder takes."""

from __future__ import annotations

import os
from pathlib import Path


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


def default_cpu_workers() -> int:
    """CPU workers for a LocalCluster: a run uses several cores (torch threads), so cores // 4."""
    return max(1, (os.cpu_count() or 1) // 4)
