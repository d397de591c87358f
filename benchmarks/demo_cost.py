"""What `make book` costs a newcomer: wall time by phase, largest process, disk, and the floor.

Clones this repository's HEAD into a fresh folder and runs what `make book` runs there, phase by
phase, with a fresh pip, preprocessing and matplotlib cache (a new machine has none):

1. install: ``make venv`` (the venv and the pinned requirements);
2. the study: ``xlm study run demo``, its output timestamped line by line: phantoms (until the
   plan is printed), runs, aggregation notebooks (after the runs' summary line);
3. the book: ``xlm book build``;
4. a second ``make book`` (nothing to train: its time over the first's).

Then, from the runs' own records (``status.json``, ``history.csv``, ``metrics.json``): training
seconds, per-run overhead (kernel, imports, data, evaluation, figures: notebook seconds minus
training), disk of ``results/`` and ``_build/``, and the floor table (every run's test MRE over
its mean-shape MRE; :func:`xlm_core.report.ablation.floor_summary`). Largest process: the peak resident
set of the largest descendant of each phase (``RUSAGE_CHILDREN``, Linux).

Everything is measured in this one invocation; run it on an otherwise idle machine::

    python benchmarks/demo_cost.py                  # about as long as `make book` twice
    python benchmarks/demo_cost.py --keep /tmp/demo_clone
    python benchmarks/demo_cost.py --results-only results/demo   # the run records only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) \
        if folder.is_dir() else 0


def gb(n: float) -> str:
    return f"{n / 1024**3:.2f} GB"


def minutes(s: float) -> str:
    return f"{s / 60:5.1f} min" if s >= 60 else f"{s:5.1f} s  "


def run_phase(cmd: list[str], cwd: Path, env: dict, log: Path) -> dict:
    """Run ``cmd``; stream its output into ``log`` with seconds since the start on every line.
    Returns seconds, the timed lines and the peak RSS of its largest descendant (bytes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    lines = []
    with open(log, "w") as fh, subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            t = time.monotonic() - start
            lines.append((t, line.rstrip("\n")))
            fh.write(f"{t:8.1f} {line}")
        code = proc.wait()
    seconds = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if code != 0:
        sys.exit(f"{' '.join(cmd)} failed with status {code}; see {log}")
    # ru_maxrss of the children is a maximum over all of them so far: a phase whose largest
    # process is smaller than an earlier phase's reports the earlier one (marked "<=")
    return {"seconds": seconds, "lines": lines, "peak_kb": peak, "peak_is_own": peak > before}


def first_time(lines, pattern: str) -> float | None:
    rx = re.compile(pattern)
    return next((t for t, text in lines if rx.search(text)), None)


def run_records(results: Path) -> dict:
    """Seconds from the runs' own files: notebook, training (+ trace) and the rest."""
    notebook = train = trace = 0.0
    runs = 0
    for folder in sorted((results / "runs").glob("*")):
        status_path, hist_path = folder / "status.json", folder / "history.csv"
        if not status_path.is_file() or not hist_path.is_file():
            continue
        status = json.loads(status_path.read_text())
        seconds = status.get("first_done_seconds") or status.get("seconds") or 0.0
        rows = hist_path.read_text().splitlines()
        header = rows[0].split(",")
        values = [dict(zip(header, r.split(","))) for r in rows[1:] if r]
        train += sum(float(v["seconds"]) for v in values)
        trace += sum(float(v.get("trace_seconds") or 0) for v in values)
        notebook += float(seconds)
        runs += 1
    return {"runs": runs, "notebook_s": notebook, "train_s": train, "trace_s": trace,
            "overhead_s": notebook - train - trace}


def floor_report(results: Path) -> str:
    from xlm_core.report import ablation
    from xlm_core.report.results import load_study

    table = ablation.floor_table(load_study(results))
    summary = ablation.floor_summary(table)
    misses = table[(table["state"] == "done") & ~table["meets_floor"].astype(bool)]
    text = summary.to_string(index=False)
    if len(misses):
        text += "\nabove the floor:\n" + misses[["run_id", "kind", "run", "ratio"]].to_string(index=False)
    return text


#: issue 23's targets for a newcomer's `make book` on two cores (install included)
TARGETS = {"wall_min": 15.0, "disk_gb": 2.0, "process_gb": 3.0, "floor": 0.35, "again": 0.05}


def targets_report(first_s: float, disk: float, peak: float, again_s: float, results: Path) -> str:
    """Each target beside its measured value, ``met`` or ``MISSED``: wall, disk, largest process,
    the floor of every run that feeds Table 1 or 2, the chains and seeds, the second build."""
    from xlm_core.report import ablation
    from xlm_core.report.results import load_study

    study = load_study(results)
    table = ablation.floor_table(study)
    tables = table[table["kind"].isin(["backbone", "transfer"])]
    worst = float(tables["ratio"].max()) if len(tables) else float("nan")
    runs = study.runs
    transfer = [r for r in runs if r["kind"] == "transfer"]
    seeds = sorted({int(r["seed"]) for r in transfer})
    finals = {(tuple(r["chain"]), r["dataset"]) for r in transfer}
    paper_chains = [c for c in finals if c[0][0] == "imagenet" and len(set(c[0][1:]) | {c[1]}) == len(c[0])]
    rows = [
        ("wall, install included", f"{first_s / 60:.1f} min", f"<= {TARGETS['wall_min']:g} min",
         first_s / 60 <= TARGETS["wall_min"]),
        ("results/ + _build/", gb(disk), f"<= {TARGETS['disk_gb']:g} GB", disk / 1024**3 <= TARGETS["disk_gb"]),
        ("largest process", gb(peak), f"<= {TARGETS['process_gb']:g} GB", peak / 1024**3 <= TARGETS["process_gb"]),
        ("worst table run / mean shape", f"{worst:.3f} ({len(tables)} runs)", f"<= {TARGETS['floor']:g}",
         bool(len(tables)) and worst <= TARGETS["floor"]),
        ("the paper's chains x seeds", f"{len(paper_chains)} trainings x {len(seeds)} seeds "
         f"({len(transfer)} transfer runs with the controls)", ">= 15 x 2",
         len(paper_chains) >= 15 and len(seeds) >= 2),
        ("second make book / first", f"{again_s / first_s:.3f}", f"<= {TARGETS['again']:g}",
         again_s / first_s <= TARGETS["again"]),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {name:<{width}}  {value:<44} target {target:<10} {'met' if ok else 'MISSED'}"
                     for name, value, target, ok in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="clone into this folder and keep it (default: a temporary one)")
    parser.add_argument("--results-only", metavar="RESULTS_DIR",
                        help="print the run records and the floor of a finished study; run nothing")
    args = parser.parse_args()
    if args.results_only:
        results = Path(args.results_only)
        rec = run_records(results)
        print(f"{rec['runs']} runs: notebooks {minutes(rec['notebook_s'])} (worker time), training "
              f"{minutes(rec['train_s'])}, trace {minutes(rec['trace_s'])}, overhead {minutes(rec['overhead_s'])}")
        print(f"results/: {gb(folder_bytes(results))}")
        print(floor_report(results))
        return 0

    clone = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="xlm-demo-cost-"))
    if clone.exists() and any(clone.iterdir()):
        sys.exit(f"{clone} is not empty")
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    caches = Path(tempfile.mkdtemp(prefix="xlm-demo-caches-"))
    env = {**os.environ, **ENV, "PIP_NO_CACHE_DIR": "1", "XLM_CACHE": str(caches / "xlm"),
           "MPLCONFIGDIR": str(caches / "mpl")}
    env.pop("VIRTUAL_ENV", None)
    logs = clone / "cost-logs"
    logs.mkdir()
    xlm = str(clone / ".venv" / "bin" / "xlm")

    install = run_phase(["make", "venv"], clone, env, logs / "install.log")
    study = run_phase([xlm, "study", "run", "demo"], clone, env, logs / "study.log")
    book = run_phase([xlm, "book", "build"], clone, env, logs / "book.log")
    first_s = install["seconds"] + study["seconds"] + book["seconds"]
    results = clone / "results" / "demo"
    disk_results, disk_build = folder_bytes(clone / "results"), folder_bytes(clone / "_build")
    again = run_phase(["make", "book"], clone, env, logs / "again.log")
    retrained = [text for _, text in again["lines"] if re.search(r"\b[1-9]\d* trained", text)]

    planned = first_time(study["lines"], r"^study demo: \d+ runs")
    runs_end = first_time(study["lines"], r"^runs: ")
    phantoms_s = planned or 0.0
    runs_s = (runs_end or study["seconds"]) - phantoms_s
    aggregation_s = study["seconds"] - (runs_end or study["seconds"])
    rec = run_records(results)
    workers_line = next((text for _, text in study["lines"] if "at a time)" in text), "")

    print(f"clone: {clone} (logs in {logs}); {os.cpu_count()} cores; {workers_line.strip()}")
    print("\n`make book` on a fresh clone, by phase (wall):")
    rows = [("install (make venv)", install["seconds"], install),
            ("phantoms + plan", phantoms_s, None),
            ("runs (training, evaluation, run notebooks)", runs_s, None),
            ("aggregation notebooks", aggregation_s, None),
            ("book (xlm book build)", book["seconds"], book)]
    for name, seconds, _phase in rows:
        print(f"  {name:<44} {minutes(seconds)}")
    print(f"  {'total':<44} {minutes(first_s)}")
    peak = max(install["peak_kb"], study["peak_kb"], book["peak_kb"]) * 1024
    print(f"largest process: {gb(peak)} resident")
    print(f"\nthe runs' own records ({rec['runs']} runs; worker seconds, summed over parallel runs):")
    print(f"  training {minutes(rec['train_s'])}, MRE trace {minutes(rec['trace_s'])}, per-run overhead "
          f"(kernel, imports, data, evaluation, figures) {minutes(rec['overhead_s'])} "
          f"= {rec['overhead_s'] / max(rec['runs'], 1):.1f} s a run")
    print(f"\ndisk after it: results/ {gb(disk_results)}, _build/ {gb(disk_build)}, "
          f"together {gb(disk_results + disk_build)}")
    print(f"\nsecond `make book`: {minutes(again['seconds'])} = {again['seconds'] / first_s:.3f} of the first; "
          + ("trained again: " + "; ".join(retrained) if retrained else "trained nothing"))
    print("\nfloor (test MRE / mean-shape MRE <= 0.35):")
    print(floor_report(results))
    print("\ntargets (issue 23):")
    print(targets_report(first_s, disk_results + disk_build, peak, again["seconds"], results))
    shutil.rmtree(caches, ignore_errors=True)
    if not args.keep:
        print(f"\n(the clone stays in {clone} for a look; delete it when done)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
