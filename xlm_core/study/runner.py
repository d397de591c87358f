"""``xlm study run`` and ``xlm study status``: a profile in, executed runs and tables out.

``run_study``: load + validate the profile -> data (phantoms written for ``data: synthetic``)
-> fingerprints -> plan -> ``results/<study>/study.json`` -> runs (papermill, local or Dask)
-> aggregation notebooks (``notebooks/{datasets,pipeline,backbones,transfer,sota,beyond,ablation}.py``,
those that exist) into ``results/<study>/notebooks/<name>.ipynb``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xlm_core import XLMError
from xlm_core.io import atomic_write_json, exclusive_lock
from xlm_core.study.execute import ExecutionReport, execute_plan
from xlm_core.study.executors import (
    DEFAULT_WORKER_TIMEOUT_S,
    DaskExecutor,
    LocalExecutor,
    check_scheduler_reachable,
)
from xlm_core.study.notebooks import NotebookFailed, execute_notebook
from xlm_core.study.plan import Plan, expand, fingerprints, prepare_data, with_encoder_weights
from xlm_core.study.preflight import PreflightReport, preflight
from xlm_core.study.profile import Profile, load_profile, repo_root, resolve_profile_path
from xlm_core.study.progress import format_seconds
from xlm_core.study.pruning import checkpoints_to_keep
from xlm_core.study.resources import auto_workers
from xlm_core.study.runstate import lock_holder, run_done, run_state
from xlm_core.study.runtask import PapermillRunner, Runner

RUN_NOTEBOOK = "train_evaluate"
#: aggregation notebooks (notebooks/<name>.py), executed after the runs, in this order; each
#: has a page in _toc.yml (book/generated/<name>)
AGGREGATION_NOTEBOOKS = ("datasets", "pipeline", "ablation", "backbones", "transfer", "sota",
                         "beyond")
STUDY_JSON = "study.json"


@dataclass
class StudyResult:
    """What :func:`run_study` did; ``exit_code`` 0 when every run and notebook succeeded."""

    profile: Profile
    plan: Plan
    report: ExecutionReport | None
    aggregation: list[dict] = field(default_factory=list)  # {"name", "state", "notebook", "error"}
    preflight: PreflightReport | None = None

    @property
    def exit_code(self) -> int:
        """0 all done; 1 a run or notebook failed; 2 the preflight refused (nothing started)."""
        if self.preflight is not None and not self.preflight.ok:
            return 2
        failed_runs = self.report is not None and not self.report.ok
        failed_nb = any(a["state"] == "failed" for a in self.aggregation)
        return 1 if failed_runs or failed_nb else 0


def notebooks_dir(notebooks: str | Path | None = None) -> Path:
    """``notebooks`` if given, else the checkout's ``notebooks/``, else ``./notebooks``."""
    if notebooks is not None:
        return Path(notebooks).resolve()
    root = repo_root()
    if root is not None and (root / "notebooks").is_dir():
        return root / "notebooks"
    return (Path.cwd() / "notebooks").resolve()


def _notebook_source(folder: Path, name: str) -> Path | None:
    for suffix in (".py", ".ipynb", ".md"):
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    return None


def study_document(profile: Profile, plan: Plan, roots: dict, prints: dict) -> dict:
    """The content of ``results/<study>/study.json`` (what the aggregation notebooks read)."""
    return {
        "study": profile.name,
        "profile": profile.name,
        "profile_path": str(profile.path) if profile.path else None,
        "note": profile.note,
        "profile_note": profile.note,
        "data_source": profile.data,
        "data": {name: {"root": str(roots[name]), "fingerprint": prints[name]} for name in roots},
        "settings": profile.settings,
        "counts": {
            "runs": len(plan.runs),
            "backbone": sum(r.kind == "backbone" for r in plan.runs),
            "transfer": sum(r.kind == "transfer" for r in plan.runs),
            "ablation": sum(r.kind == "ablation" for r in plan.runs),
        },
        "execution": profile.settings.get("execution"),
        "runs": [r.as_dict() for r in plan.runs],
        # the ablation's grid (loss x lr), including points that are another run of the study
        "ablation_runs": list(plan.ablation_ids),
    }


def plan_study(
    spec: str | Path | Profile,
    results: str | Path = "results",
    data_root: str | Path | None = None,
    phantom_writer=None,
    log: Callable[[str], None] = print,
) -> tuple[Profile, Plan, dict]:
    """Profile -> (profile, plan, study document); writes data and ``study.json``, trains nothing."""
    profile = spec if isinstance(spec, Profile) else load_profile(spec)
    results_dir = (Path(results) / profile.name).resolve()
    roots = prepare_data(profile, results_dir, data_root=data_root, writer=phantom_writer, log=log)
    prints = fingerprints(roots, results_dir)
    plan = expand(profile, roots, prints, results_dir)
    document = study_document(profile, plan, roots, prints)
    atomic_write_json(results_dir / STUDY_JSON, document)
    return profile, plan, document


def run_study(
    spec: str | Path | Profile,
    *,
    results: str | Path = "results",
    data_root: str | Path | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    notebooks: str | Path | None = None,
    aggregate: bool = True,
    runner: Runner | None = None,
    phantom_writer=None,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
    poll_s: float = 2.0,
    keep_checkpoints: bool = False,
    worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S,
    allow_cpu: bool = False,
    encoder_weights: dict[str, str] | None = None,
    check: bool = True,
) -> StudyResult:
    """Run a study (see the module docstring). ``runner``: replaces the papermill run notebook.
    ``keep_checkpoints``: keep every finished run's checkpoint whatever the profile's
    ``execution.keep_checkpoints`` says. ``worker_timeout_s``: how long an existing Dask
    scheduler (``scheduler``) may have no worker before the study gives up. Before anything
    trains, :func:`xlm_core.study.preflight.preflight` checks the plan against this machine
    (``allow_cpu``: GPU-sized work on a CPU anyway) and refuses (exit status 2) on a problem.
    ``encoder_weights``: ``{encoder: imagenet|none|PATH}`` over the profile's
    (:func:`xlm_core.study.plan.with_encoder_weights`). ``check`` False skips the preflight
    (``--no-preflight``: the runs then meet each problem on their own)."""
    if executor not in ("local", "dask"):
        raise XLMError(f"unknown executor {executor!r}; allowed: local, dask")
    if scheduler and executor != "dask":
        raise XLMError("--scheduler needs --executor dask")
    if workers is not None and workers < 1:
        raise XLMError(f"--workers must be >= 1, got {workers}")
    if scheduler and not dry_run:  # a wrong address: one line, before any data is written
        check_scheduler_reachable(scheduler)
    nb_dir = notebooks_dir(notebooks)
    if runner is None and not dry_run:
        source = _notebook_source(nb_dir, RUN_NOTEBOOK)
        if source is None:
            raise XLMError(f"the run notebook {nb_dir / RUN_NOTEBOOK}.py is missing")
        # the local executor's threads keep a kernel each (5-6 s a run less, measured on the
        # ci study); Dask workers start one per run
        runner = PapermillRunner(str(source), reuse_kernel=executor == "local")

    if encoder_weights:
        spec = with_encoder_weights(spec if isinstance(spec, Profile) else load_profile(spec), encoder_weights)
    profile, plan, _ = plan_study(spec, results, data_root, phantom_writer, log)
    counts = {k: sum(r.kind == k for r in plan.runs) for k in ("backbone", "transfer", "ablation")}
    log(f"study {profile.name}: {len(plan.runs)} runs ("
        + ", ".join(f"{n} {k}" for k, n in counts.items() if n or k != "ablation")
        + f"), results in {plan.results_dir}")
    log(f"  {profile.note}")

    execution = profile.settings.get("execution") or {}
    if workers is None and scheduler is None:
        workers = execution.get("workers")
        if workers == "auto":
            workers = auto_workers(execution.get("threads"))
    keep = "all" if keep_checkpoints else execution.get("keep_checkpoints", "all")
    checked = None
    if check and (dry_run or not all(run_done(plan.run_dir(r.run_id)) for r in plan.runs)):
        checked = preflight(plan, profile.settings, workers=int(workers or 1), allow_cpu=allow_cpu,
                            keep=checkpoints_to_keep(plan, keep))
        for line in checked.lines():
            log(line)
    if dry_run:
        for run in plan.runs:
            state, _ = run_state(plan.run_dir(run.run_id))
            log(f"  {run.run_id}  {state:<8} {run.label}")
        return StudyResult(profile, plan, None, preflight=checked)
    if checked is not None and not checked.ok:
        return StudyResult(profile, plan, None, preflight=checked)

    def make_executor():
        if executor == "dask":
            ex = DaskExecutor(runner, scheduler=scheduler, workers=workers,
                              worker_timeout_s=worker_timeout_s, log=log)
            log(f"dask cluster at {ex.address}: {ex.parallelism} worker(s)"
                + (f", one per GPU ({ex.gpu_count})" if ex.gpu_count else ""))
            return ex
        return LocalExecutor(runner, workers=workers or 1)

    with thread_limit(execution.get("threads")):
        report = execute_plan(plan, make_executor, profile.note, log=log, poll_s=poll_s,
                              keep_checkpoints=keep)
    log(summary_line(report))
    for f in report.failed:
        log(f"  failed  {f['run_id']} {f['label']}: {f['error']}\n          notebook: {f['notebook']}")
    for s in report.skipped:
        log(f"  skipped {s['run_id']} {s['label']}: {s['because']}")
    result = StudyResult(profile, plan, report)
    if aggregate:
        names = tuple(profile.settings.get("notebooks") or AGGREGATION_NOTEBOOKS)
        result.aggregation = run_aggregation(plan, nb_dir, names=names, log=log)
    return result


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class thread_limit:
    """Within a ``with`` block, processes started from here (notebook kernels, Dask workers)
    run torch/OpenMP with ``threads`` threads (``OMP_NUM_THREADS`` and friends); None: no change.

    Several runs side by side on a few cores are faster with one thread each than with
    every run spreading over every core (oversubscription). The variables are restored after.
    """

    def __init__(self, threads: int | None):
        self.threads = threads
        self.saved: dict[str, str | None] = {}

    def __enter__(self):
        import os

        if self.threads is not None:
            for key in THREAD_ENV:
                self.saved[key] = os.environ.get(key)
                os.environ[key] = str(int(self.threads))
        return self

    def __exit__(self, *exc):
        import os

        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def summary_line(report: ExecutionReport) -> str:
    parts = [f"{len(report.trained)} trained", f"{len(report.cached)} already done"]
    if report.by_other:
        parts.append(f"{len(report.by_other)} done by another runner")
    if report.failed:
        parts.append(f"{len(report.failed)} FAILED")
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    return f"runs: {', '.join(parts)} of {report.total} in {format_seconds(report.seconds)}"


# --------------------------------------------------------------------------- aggregation


def _sources_digest() -> str:
    """Hash of the xlm_core sources (a changed report function re-executes the tables)."""
    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parents[1]
    for path in sorted(pkg.rglob("*.py")):
        h.update(path.relative_to(pkg).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _aggregation_stamp(plan: Plan, source: Path, sources_digest: str) -> str:
    h = hashlib.sha256()
    h.update(source.read_bytes())
    h.update((plan.results_dir / STUDY_JSON).read_bytes())
    h.update(sources_digest.encode())
    for run in plan.runs:
        m = plan.run_dir(run.run_id) / "metrics.json"
        if run_done(plan.run_dir(run.run_id)):
            st = m.stat()
            h.update(f"{run.run_id}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def run_aggregation(
    plan: Plan,
    nb_dir: Path,
    names: tuple[str, ...] = AGGREGATION_NOTEBOOKS,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Execute the aggregation notebooks that exist into ``results/<study>/notebooks/``.

    A notebook is re-executed only when its source, study.json, the finished runs or the
    xlm_core sources changed since it last succeeded (stamps in ``notebooks/.stamps.json``).
    """
    out_dir = plan.results_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamps_path = out_dir / ".stamps.json"
    results = []
    digest = _sources_digest()
    with exclusive_lock(out_dir / ".lock"):
        try:
            stamps = json.loads(stamps_path.read_text())
        except (OSError, ValueError):
            stamps = {}
        for name in names:
            source = _notebook_source(nb_dir, name)
            output = out_dir / f"{name}.ipynb"
            if source is None:
                log(f"aggregation: notebooks/{name}.py not found, skipped")
                results.append({"name": name, "state": "missing", "notebook": None, "error": None})
                continue
            stamp = _aggregation_stamp(plan, source, digest)
            if stamps.get(name) == stamp and output.is_file():
                results.append({"name": name, "state": "cached", "notebook": str(output), "error": None})
                continue
            params = {"results_dir": str(plan.results_dir), "study": plan.study}
            try:
                execute_notebook(source, output, params, cwd=source.parent)
            except NotebookFailed as exc:
                log(f"aggregation: {name} FAILED: {exc}\n             notebook: {exc.notebook}")
                stamps.pop(name, None)
                results.append({"name": name, "state": "failed",
                                "notebook": str(exc.notebook) if exc.notebook else None,
                                "error": str(exc)})
                continue
            stamps[name] = stamp
            atomic_write_json(stamps_path, stamps)
            log(f"aggregation: {name} -> {output}")
            results.append({"name": name, "state": "executed", "notebook": str(output), "error": None})
        atomic_write_json(stamps_path, stamps)
    return results


# --------------------------------------------------------------------------- status


def study_results_dir(study: str | Path, results: str | Path = "results") -> Path:
    """``results/<name>`` for a study name, a profile name or a profile path."""
    text = str(study)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        name = load_profile(resolve_profile_path(text)).name
    else:
        name = text
    return (Path(results) / name).resolve()


def planned_runs(study: str | Path, results: str | Path = "results") -> tuple[Path, list[dict]]:
    """``(results/<study>, runs)``: the runs of the study's last plan, from its ``study.json``."""
    results_dir = study_results_dir(study, results)
    path = results_dir / STUDY_JSON
    if not path.is_file():
        raise XLMError(f"{path} not found: run `xlm study run {study}` first (or pass --results DIR)")
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise XLMError(f"{path}: not a study file ({exc})") from None
    return results_dir, runs


def study_status(study: str | Path, results: str | Path = "results") -> list[dict]:
    """Every run of a study (as last planned by ``xlm study run``) with its state.

    Rows: ``run_id, state (done|running|failed|pending), detail, kind, dataset, arch,
    encoder, chain, fold, seed, notebook``.
    """
    results_dir, runs = planned_runs(study, results)
    rows = []
    for run in runs:
        run_dir = results_dir / "runs" / run["run_id"]
        state, detail = run_state(run_dir)
        notebook = run_dir / "run.ipynb"
        rows.append({
            "run_id": run["run_id"], "state": state, "detail": detail, "kind": run["kind"],
            "dataset": run["dataset"], "arch": run["arch"], "encoder": run["encoder"],
            "chain": run.get("chain_label") if run["kind"] != "ablation"
            else f"{run.get('loss')} lr {run.get('lr')}",
            "fold": run.get("fold"), "seed": run.get("seed"),
            "notebook": str(notebook) if notebook.is_file() else None,
        })
    return rows


def orphan_runs(study: str | Path, results: str | Path = "results") -> list[Path]:
    """Run directories under ``results/<study>/runs/`` that the study's last plan
    (``study.json``) does not name: runs of parameters since changed. The tables never read
    them, but they hold checkpoints (hundreds of MB each) and confuse anyone who globs
    ``runs/*``."""
    results_dir, runs = planned_runs(study, results)
    planned = {run["run_id"] for run in runs}
    runs_dir = results_dir / "runs"
    if not runs_dir.is_dir():
        return []
    return sorted(d for d in runs_dir.iterdir() if d.is_dir() and d.name not in planned)


def prune_orphans(study: str | Path, results: str | Path = "results", delete: bool = False) -> list[dict]:
    """:func:`orphan_runs`, each ``{"path", "state"}``: ``kept (held by ...)`` when a process
    holds its lock (never deleted), ``deleted`` when ``delete``, else ``orphan``."""
    import shutil

    rows = []
    for path in orphan_runs(study, results):
        holder = lock_holder(path)
        if holder is not None:
            rows.append({"path": str(path), "state": f"kept (held by {holder})"})
            continue
        if delete:
            shutil.rmtree(path)
        rows.append({"path": str(path), "state": "deleted" if delete else "orphan"})
    return rows


def format_status(rows: list[dict]) -> str:
    """A fixed-width table of :func:`study_status` rows, with a count per state."""
    head = f"{'run_id':<16}  {'state':<8} {'kind':<9} {'dataset':<7} {'model':<32} {'chain':<24} {'fold':>4} {'seed':>4}"
    lines = [head]
    for r in rows:
        model = f"{r['arch']}/{r['encoder']}"
        fold = "" if r["fold"] is None else str(r["fold"])
        line = (f"{r['run_id']:<16}  {r['state']:<8} {r['kind']:<9} {r['dataset']:<7} {model:<32} "
                f"{r['chain'] or '':<24} {fold:>4} {r['seed']:>4}")
        if r["detail"]:
            line += f"  {r['detail']}"
        lines.append(line)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    order = ("done", "running", "failed", "pending")
    lines.append(", ".join(f"{counts.get(s, 0)} {s}" for s in order) + f" of {len(rows)} runs")
    return "\n".join(lines)
