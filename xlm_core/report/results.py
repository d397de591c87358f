"""Reading a study's results folder: the study, its runs, their chains and scores (pure
functions over files on disk; the tables built from them: :mod:`xlm_core.report.tables`).

Inputs, as written by the study runner and ``train_and_evaluate``::

    results/<study>/study.json               profile, data source, expanded runs (their role)
    results/<study>/runs/<run_id>/metrics.json   one run's scores (schema: xlm_core.config)
    results/<study>/runs/<run_id>/predictions.csv  per-landmark predictions (per-image errors)

Outputs of the book layer: ``table1_backbones.csv`` (architecture x encoder, CV on held-out
folds), ``table2_transfer.csv`` (target x chain, test split, mean over seeds) and
``table3_sota.csv`` (ours beside the published figures, never in the same columns). Every table
carries the profile, the data source (synthetic / real), the unit and the evaluation protocol in
its rows.

Table layout: SDR columns are positional, ``sdr_t1 ... sdr_t4``, with the thresholds (in the
row's unit) in a ``thresholds`` column such as ``"2;2.5;3;4"`` (as in the paper's CSV files),
because each dataset has its own thresholds.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from xlm_core import XLMError

PUBLISHED_LABEL = "published figures (Di Via et al. 2024 and cited works)"
MAX_THRESHOLDS = 4
PROTOCOLS = ("clean", "zhu")
PROTOCOL_TEXT = {
    "clean": "clean protocol (sub-pixel decoding, errors in the original image)",
    "zhu": "zhu protocol (integer argmax on the resized grid, as Zhu et al. 2021)",
}
MEAN_SHAPE = "mean-shape baseline"
STATS_COLUMNS = ("delta_mre", "ci_low", "ci_high", "p_value", "p_holm")
#: the same comparison against the matched control with as many stages (Table 2)
CONTROL_STATS_COLUMNS = ("delta_vs_control", "ci_low_vs_control", "ci_high_vs_control",
                         "p_vs_control", "p_holm_vs_control")
#: the lowest-MRE row of a target against the second lowest (one test per target, no correction)
RUNNER_UP_COLUMNS = ("runner_up", "delta_vs_runner_up", "ci_low_vs_runner_up", "ci_high_vs_runner_up",
                     "p_vs_runner_up")
#: significance level of the generated verdicts (after Holm's correction within a target)
ALPHA = 0.05


# --------------------------------------------------------------------------- reading


def read_json(path: Path) -> dict:
    """A JSON object of a results folder (``study.json``, a run's ``metrics.json`` or
    ``status.json``); XLMError naming the file when it is absent, unreadable or not an object."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise XLMError(f"{path}: not found (run `xlm study run` first)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise XLMError(f"{path}: not readable ({exc})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise XLMError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, dict):
        raise XLMError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


@dataclass(frozen=True)
class StudyInfo:
    """What a study says about itself (from ``study.json``, read by :func:`load_study`)."""

    name: str
    profile: str
    profile_note: str
    data_source: str  # "synthetic" | "real" | "mixed"
    runs: list[dict]
    results_dir: Path
    #: the profile's settings as the study recorded them (``settings``; {} when absent)
    settings: dict = field(default_factory=dict)
    #: the ablation's grid, run ids in order (``ablation_runs``, written by the runner; None when absent)
    ablation_runs: list[str] | None = None

    def label(self, protocol: str | None = None, evaluated_on: str | None = None) -> str:
        """One line naming the profile, the data and the protocol: every table's caption."""
        parts = [f"profile: {self.profile}", f"data: {self.data_source}"]
        if protocol:
            parts.append(PROTOCOL_TEXT.get(protocol, protocol))
        if evaluated_on:
            parts.append(f"evaluated on: {evaluated_on}")
        text = "; ".join(parts)
        if self.data_source != "real":
            text += ". SYNTHETIC DATA: these numbers say nothing about real x-rays"
        if self.profile_note:
            text += f" ({self.profile_note})"
        return text


def _data_source(raw: object) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        values = {str(v) for v in raw.values()}
        if len(values) == 1:
            return values.pop()
        return "mixed" if values else "unknown"
    return "unknown"


def load_study(results_dir: str | Path) -> StudyInfo:
    """Read ``results_dir/study.json``, the one place the book layer parses it: every report
    function takes the :class:`StudyInfo` it returns. Raises XLMError naming the file when absent
    or malformed."""
    results_dir = Path(results_dir)
    path = results_dir / "study.json"
    obj = read_json(path)
    runs = obj.get("runs")
    if not isinstance(runs, list):
        raise XLMError(f"{path}: 'runs' must be a list of run descriptions")
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or "run_id" not in run or "kind" not in run:
            raise XLMError(f"{path}: runs[{i}] needs at least 'run_id' and 'kind'")
    name = str(obj.get("study") or obj.get("name") or results_dir.name)
    profile = str(obj.get("profile") or name)
    settings = obj.get("settings")
    return StudyInfo(
        name=name,
        profile=profile,
        profile_note=str(obj.get("profile_note") or obj.get("note") or ""),
        data_source=_data_source(obj.get("data_source", "unknown")),
        runs=runs,
        results_dir=results_dir,
        settings=dict(settings) if isinstance(settings, dict) else {},
        ablation_runs=obj.get("ablation_runs"),
    )


def run_dir(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "runs" / run_id


def load_metrics(path: str | Path) -> dict:
    """Read one run's ``metrics.json`` and check the keys the tables need."""
    path = Path(path)
    obj = read_json(path)
    for key in ("test", "unit"):
        if key not in obj:
            raise XLMError(f"{path}: missing key {key!r} (see xlm_core.config for the schema)")
    return obj


def data_roots(study: StudyInfo) -> dict[str, str]:
    """Dataset name -> root folder, from the runs' configs (first one seen per dataset)."""
    roots: dict[str, str] = {}
    for run in study.runs:
        cfg = run.get("config") or {}
        name = run.get("dataset") or cfg.get("dataset")
        if name and cfg.get("root") and name not in roots:
            roots[str(name)] = str(cfg["root"])
    return roots


def data_options(study: StudyInfo) -> dict[str, dict]:
    """Dataset name -> loader options (``config.extra``: wrist pair, annotator, ...), first run seen."""
    options: dict[str, dict] = {}
    for run in study.runs:
        cfg = run.get("config") or {}
        name = run.get("dataset") or cfg.get("dataset")
        if name and name not in options:
            options[str(name)] = dict(cfg.get("extra") or {})
    return options


def chain_before(run: dict) -> list[str]:
    """The stages before the run's own dataset: ``["imagenet", "hand"]`` for imagenet>hand>target.

    ``study.json``'s ``stages`` (the whole path, the run's own dataset last) decides when present:
    a matched control repeats its target (``imagenet>head>head``). Without it (older or
    hand-written study files) ``chain`` may list the path with or without the run's own dataset;
    a trailing own name is then dropped.
    """
    stages = run.get("stages")
    if stages:
        return [str(c) for c in stages[:-1]]
    chain = [str(c) for c in (run.get("chain") or ["imagenet"])]
    dataset = run.get("dataset") or (run.get("config") or {}).get("dataset")
    if len(chain) > 1 and chain[-1] == dataset:
        chain = chain[:-1]
    return chain


def chain_names(study: StudyInfo, run: dict) -> set[str]:
    """A run's chain as the profile names it and with its real start (both match a query)."""
    return {run_chain(run), run_chain(run, chain_start(study, run))}


#: how a compute control's label names the chain whose steps it matches
STEPS_OF = " (steps of "


def run_chain(run: dict, start: str | None = None) -> str:
    """A run's chain label (the stages before its dataset), its first token the real ``start``
    when given (:func:`honest_chain`); a compute control (``study.json``'s ``matches``: the target
    alone for as many optimiser steps as a chain, in one schedule) adds that chain's stages before
    the target: ``imagenet (steps of imagenet>spine)``."""
    stages = chain_before(run)
    label = honest_chain(stages, start) if start else chain_label(stages)
    if run.get("matches"):
        matched = str(run["matches"]).split(">")[:-1]
        label += STEPS_OF + (honest_chain(matched, start) if start else chain_label(matched)) + ")"
    return label


def is_compute_control(chain: str) -> bool:
    """True for a compute control's label (:func:`run_chain`)."""
    return STEPS_OF in str(chain)


def compute_control_for(chain: str, labels: Iterable[str]) -> str | None:
    """The compute control among ``labels`` that matches ``chain``'s steps, or None."""
    wanted = f"{str(chain).split('>')[0]}{STEPS_OF}{chain})"
    return wanted if wanted in set(labels) else None


def chain_label(chain: Iterable[str]) -> str:
    """``["imagenet", "head"]`` -> ``"imagenet>head"`` (the paper's CSV notation)."""
    return ">".join(chain)


def start_label(encoder_weights: str | None) -> str:
    """Name what a chain's first stage started from.

    Args:
        encoder_weights: the first stage's recorded ``config.encoder_weights`` (``imagenet``,
            ``none`` or a path to a weights file).

    Returns:
        ``imagenet`` (ImageNet weights loaded), ``scratch`` (``none``: random initialisation)
        or the weights file's name.
    """
    value = str(encoder_weights or "none")
    if value.lower() == "imagenet":
        return "imagenet"
    if value.lower() == "none":
        return "scratch"
    return value.replace("\\", "/").rsplit("/", 1)[-1]


def _run_metrics_or_none(results_dir: Path, run_id: str) -> dict | None:
    path = run_dir(results_dir, run_id) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except XLMError:
        return None


def chain_start(study: StudyInfo, run: dict) -> str:
    """What the first stage of ``run``'s chain really started from, from the runs' metadata.

    Walks back from ``run`` through its ``metrics.json`` ``transfer`` report (``source``: the
    checkpoint of the stage before, ``runs/<id>/checkpoint.pt``), or ``study.json``'s
    ``depends_on`` when a run has not finished, to the stage that loaded no checkpoint; that
    stage's recorded ``config.encoder_weights`` (its ``metrics.json``, else ``study.json``)
    names the start. The profile's chain token (``imagenet``) is never trusted.

    Args:
        study: the study (:func:`load_study`): its folder and all its runs (for ``depends_on``).
        run: one run of ``study.json``'s ``runs``.

    Returns:
        ``imagenet``, ``scratch`` or a weights file's name (:func:`start_label`).
    """
    results_dir = study.results_dir
    by_id = {r["run_id"]: r for r in study.runs}
    current, seen = run, set()
    while current["run_id"] not in seen:
        seen.add(current["run_id"])
        metrics = _run_metrics_or_none(results_dir, current["run_id"])
        parent_id = None
        if metrics is not None and metrics.get("transfer"):
            source = Path(str(metrics["transfer"].get("source") or ""))
            parent_id = source.parent.name if source.name else None
        elif metrics is None and current.get("depends_on"):
            parent_id = str(current["depends_on"][0])
        elif metrics is None and (current.get("config") or {}).get("init"):
            parent_id = Path(str(current["config"]["init"])).parent.name
        if parent_id is None:
            cfg = (metrics or {}).get("config") or current.get("config") or {}
            return start_label(cfg.get("encoder_weights"))
        parent = by_id.get(parent_id)
        if parent is None:  # a checkpoint from outside the study: name the file
            return Path(str((metrics or {}).get("transfer", {}).get("source") or parent_id)).name
        current = parent
    raise XLMError(f"{results_dir}: run {run['run_id']}'s chain loops back on itself")


def honest_chain(chain: Iterable[str], start: str) -> str:
    """The chain label with its first token replaced by the real start.

    Args:
        chain: the stages before the target as the profile names them (``["imagenet", "hand"]``).
        start: what the first stage really started from (:func:`chain_start`).

    Returns:
        e.g. ``"scratch>hand"`` when the profile's ``imagenet`` stage loaded no ImageNet weights.
    """
    stages = list(chain)
    return chain_label([start, *stages[1:]])


def is_single_stage(chain: str) -> bool:
    """True for a chain that trains on the target only (``imagenet``, ``scratch``): the baseline
    every longer chain is compared with.

    Args:
        chain: a chain label of Table 2.

    Returns:
        Whether the label has one stage and is not the mean-shape row.
    """
    return ">" not in str(chain) and str(chain) != MEAN_SHAPE


def is_control(chain: str, target: str) -> bool:
    """True for a matched control's row of Table 2: every stage after the start is the target
    itself (``scratch>head`` and ``scratch>head>head`` for target head).

    Args:
        chain: a chain label of Table 2 (the stages before the target).
        target: the row's target dataset.

    Returns:
        Whether the chain trains on the target alone, in two or more stages.
    """
    from xlm_core.study.profile import is_control_chain

    return not is_compute_control(chain) and is_control_chain([*str(chain).split(">"), target])


def control_for(chain: str, target: str) -> str | None:
    """The matched control with as many stages as ``chain`` (``scratch>hand>chest`` for target
    head -> ``scratch>head>head``); None for a single-stage chain, a control or the mean shape."""
    tokens = str(chain).split(">")
    if len(tokens) < 2 or chain == MEAN_SHAPE or is_compute_control(chain) or is_control(chain, target):
        return None
    return ">".join([tokens[0]] + [target] * (len(tokens) - 1))


START_TEXT = {
    "imagenet": "ImageNet weights loaded",
    "scratch": "random initialisation, no ImageNet weights",
}


def start_text(start: str) -> str:
    """A reader's gloss of a start label.

    Args:
        start: ``imagenet``, ``scratch`` or a weights file's name.

    Returns:
        e.g. ``"random initialisation, no ImageNet weights"``.
    """
    return START_TEXT.get(start, f"encoder weights from {start}")


# --------------------------------------------------------------------------- scores


def _score(metrics: dict, split: str, protocol: str, where: str) -> dict | None:
    block = metrics.get(split)
    if block is None:
        return None
    if protocol not in block:
        raise XLMError(f"{where}: {split!r} has no {protocol!r} score (has {sorted(block)})")
    return block[protocol]


def sdr_items(score: dict) -> list[tuple[float, float]]:
    """``[(threshold, percent), ...]`` sorted by threshold, from a SCORE's ``sdr`` dict."""
    return sorted((float(k), float(v)) for k, v in (score.get("sdr") or {}).items())


def thresholds_text(thresholds: Iterable[float]) -> str:
    return ";".join(f"{t:g}" for t in thresholds)


def steps_per_epoch(metrics: dict) -> int:
    """Optimiser steps in one epoch of a finished run, from its ``metrics.json`` (``splits.fit``
    images, ``config.batch_size``): :func:`xlm_core.samples.fit_steps_per_epoch`."""
    from xlm_core.samples import fit_steps_per_epoch

    fit = int((metrics.get("splits") or {}).get("fit") or 0)
    return fit_steps_per_epoch(fit, int((metrics.get("config") or {}).get("batch_size") or 1))


def run_steps(metrics: dict) -> int:
    """Optimiser steps a finished run took: its recorded ``steps_run`` (a ``steps`` run's last
    epoch is cut short), else ``epochs_run`` x :func:`steps_per_epoch` (runs before it)."""
    if metrics.get("steps_run") is not None:
        return int(metrics["steps_run"])
    return int(metrics.get("epochs_run") or 0) * steps_per_epoch(metrics)


def collect_runs(study: StudyInfo, protocol: str = "clean") -> pd.DataFrame:
    """One row per run listed in ``study.json`` (``study``, :func:`load_study`) with its test and
    held-out scores.

    Columns: run_id, kind, dataset, arch, encoder, loss, fold, seed, start (what the chain's
    first stage really started from: ``imagenet`` or ``scratch``, :func:`chain_start`), chain
    (stages before the run's dataset, first token the real start: ``"scratch>hand"``),
    profile_chain (as the profile names it: ``"imagenet>hand"``), status ("done" | "missing"), unit, protocol, thresholds,
    test_mre, test_sdr_t1..t4, test_mean_shape_mre, heldout_mre, heldout_sdr_t1..t4,
    heldout_mean_shape_mre, data_source, wrist_pair, steps (:func:`run_steps`). A run whose ``metrics.json`` is absent is
    listed as "missing" (never silently dropped).
    """
    if protocol not in PROTOCOLS:
        raise XLMError(f"unknown protocol {protocol!r}; allowed: {list(PROTOCOLS)}")
    rows = []
    for run in study.runs:
        cfg = run.get("config") or {}
        start = chain_start(study, run)
        row = {
            "run_id": run["run_id"],
            "kind": run["kind"],
            "dataset": run.get("dataset") or cfg.get("dataset"),
            "arch": run.get("arch") or cfg.get("arch"),
            "encoder": run.get("encoder") or cfg.get("encoder"),
            "loss": run.get("loss") or cfg.get("loss"),
            "fold": run.get("fold", cfg.get("fold")),
            "folds": run.get("folds", cfg.get("folds")),
            "seed": run.get("seed", cfg.get("seed", 0)),
            "start": start,
            "chain": run_chain(run, start),
            "profile_chain": run_chain(run),
            "protocol": protocol,
        }
        path = run_dir(study.results_dir, run["run_id"]) / "metrics.json"
        if not path.is_file():
            rows.append({**row, "status": "missing"})
            continue
        metrics = load_metrics(path)
        row.update(
            status="done",
            unit=metrics.get("unit"),
            data_source=metrics.get("data_source", study.data_source),
            wrist_pair=metrics.get("wrist_pair"),
            grid_hw="x".join(str(int(v)) for v in metrics["test_size"]) if metrics.get("test_size") else None,
            steps=run_steps(metrics),
        )
        for split in ("test", "heldout"):
            score = _score(metrics, split, protocol, str(path))
            if score is None:
                continue
            items = sdr_items(score)
            row["thresholds"] = thresholds_text(t for t, _ in items)
            row[f"{split}_mre"] = float(score["mre"])
            row[f"{split}_n_images"] = score.get("n_images")
            msm = score.get("mean_shape_mre", metrics.get("mean_shape_mre") if split == "test" else None)
            row[f"{split}_mean_shape_mre"] = float(msm) if msm is not None else math.nan
            for i, (_, value) in enumerate(items[:MAX_THRESHOLDS], start=1):
                row[f"{split}_sdr_t{i}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def mean_std(values: pd.Series) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0.0 for one value, as nothing varies)."""
    v = values.dropna().astype(float)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def aggregate_scores(group: pd.DataFrame, split: str) -> dict:
    out: dict = {}
    out["mre"], out["mre_std"] = mean_std(group[f"{split}_mre"])
    for i in range(1, MAX_THRESHOLDS + 1):
        col = f"{split}_sdr_t{i}"
        if col in group:
            out[f"sdr_t{i}"], out[f"sdr_t{i}_std"] = mean_std(group[col])
        else:
            out[f"sdr_t{i}"], out[f"sdr_t{i}_std"] = math.nan, math.nan
    return out


def single_value(group: pd.DataFrame, column: str) -> object:
    values = group[column].dropna().unique() if column in group else []
    return values[0] if len(values) == 1 else ("mixed" if len(values) else None)


def run_sizes(study: StudyInfo) -> dict[str, dict]:
    """What the study's finished runs recorded per dataset: the grids they trained and tested at
    and the hand's wrist pair, from their ``metrics.json`` (``train_size``, ``test_size``,
    ``wrist_pair``, ``zhu_wrist_pair``, ``scale``).

    Args:
        study: the study (:func:`load_study`).

    Returns:
        ``{dataset: {"train_hw": "64x64", "test_hw": "64x46", "wrist_pair": "2, 6", "zhu_wrist_pair":
        "1, 5", "scale": ...}}``; a value seen differently in two runs reads ``"mixed"``; a dataset
        without a finished run is absent.
    """
    seen: dict[str, dict[str, set]] = {}
    for run in study.runs:
        metrics = _run_metrics_or_none(study.results_dir, run["run_id"])
        if metrics is None:
            continue
        name = str(metrics.get("dataset") or run.get("dataset"))
        entry = seen.setdefault(name, {})
        for key, size in (("train_hw", "train_size"), ("test_hw", "test_size")):
            if metrics.get(size):
                entry.setdefault(key, set()).add("x".join(str(int(v)) for v in metrics[size]))
        for key in ("wrist_pair", "zhu_wrist_pair"):
            if metrics.get(key):
                entry.setdefault(key, set()).add(", ".join(str(int(v)) for v in metrics[key]))
        if metrics.get("scale"):
            entry.setdefault("scale", set()).add(str(metrics["scale"]))
    return {name: {k: (v.pop() if len(v) == 1 else "mixed") for k, v in entry.items()}
            for name, entry in seen.items()}
