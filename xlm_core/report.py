"""Aggregate a study's runs into the book's tables (pure functions over files on disk).

Inputs, as written by the study runner and ``train_and_evaluate``::

    results/<study>/study.json               profile, data source, expanded runs (their role)
    results/<study>/runs/<run_id>/metrics.json   one run's scores (schema: xlm_core.config)
    results/<study>/runs/<run_id>/predictions.csv  per-landmark predictions (per-image errors)

Outputs: ``table1_backbones.csv`` (architecture x encoder, CV on held-out folds),
``table2_transfer.csv`` (target x chain, test split, mean over seeds) and ``table3_sota.csv``
(ours beside the published figures, never in the same columns). Every table carries the
profile, the data source (synthetic / real), the unit and the evaluation protocol in its rows.

Table layout: SDR columns are positional, ``sdr_t1 ... sdr_t4``, with the thresholds (in the
row's unit) in a ``thresholds`` column such as ``"2;2.5;3;4"`` (as in the paper's CSV files),
because each dataset has its own thresholds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from xlm_core import XLMError
from xlm_core.io import atomic_write

PUBLISHED_LABEL = "published figures (Di Via et al. 2024 and cited works)"
MAX_THRESHOLDS = 4
PROTOCOLS = ("clean", "zhu")
PROTOCOL_TEXT = {
    "clean": "clean protocol (sub-pixel decoding, errors in the original image)",
    "zhu": "zhu protocol (integer argmax on the resized grid, as Zhu et al. 2021)",
}
MEAN_SHAPE = "mean-shape baseline"
STATS_COLUMNS = ("delta_mre", "ci_low", "ci_high", "p_value", "p_holm")
#: significance level of the generated verdicts (after Holm's correction within a target)
ALPHA = 0.05


# --------------------------------------------------------------------------- reading


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise XLMError(f"{path}: not found") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise XLMError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, dict):
        raise XLMError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


@dataclass(frozen=True)
class StudyInfo:
    """What a study says about itself (from ``study.json``)."""

    name: str
    profile: str
    profile_note: str
    data_source: str  # "synthetic" | "real" | "mixed"
    runs: list[dict]
    results_dir: Path

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
    """Read ``results_dir/study.json``. Raises XLMError naming the file when absent or malformed."""
    results_dir = Path(results_dir)
    path = results_dir / "study.json"
    obj = _read_json(path)
    runs = obj.get("runs")
    if not isinstance(runs, list):
        raise XLMError(f"{path}: 'runs' must be a list of run descriptions")
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or "run_id" not in run or "kind" not in run:
            raise XLMError(f"{path}: runs[{i}] needs at least 'run_id' and 'kind'")
    name = str(obj.get("study") or obj.get("name") or results_dir.name)
    profile = str(obj.get("profile") or name)
    return StudyInfo(
        name=name,
        profile=profile,
        profile_note=str(obj.get("profile_note") or obj.get("note") or ""),
        data_source=_data_source(obj.get("data_source", "unknown")),
        runs=runs,
        results_dir=results_dir,
    )


def study_settings(results_dir: str | Path) -> dict:
    """The profile settings recorded in ``study.json`` (``settings``; {} when absent)."""
    obj = _read_json(Path(results_dir) / "study.json")
    settings = obj.get("settings")
    return dict(settings) if isinstance(settings, dict) else {}


def run_dir(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "runs" / run_id


def load_metrics(path: str | Path) -> dict:
    """Read one run's ``metrics.json`` and check the keys the tables need."""
    path = Path(path)
    obj = _read_json(path)
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

    ``study.json`` may list the chain with or without the run's own dataset at the end; a chain
    never names a dataset twice, so a trailing own name is dropped.
    """
    chain = [str(c) for c in (run.get("chain") or ["imagenet"])]
    dataset = run.get("dataset") or (run.get("config") or {}).get("dataset")
    if len(chain) > 1 and chain[-1] == dataset:
        chain = chain[:-1]
    return chain


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
        return _read_json(path)
    except XLMError:
        return None


def chain_start(results_dir: str | Path, run: dict, runs: list[dict] | None = None) -> str:
    """What the first stage of ``run``'s chain really started from, from the runs' metadata.

    Walks back from ``run`` through its ``metrics.json`` ``transfer`` report (``source``: the
    checkpoint of the stage before, ``runs/<id>/checkpoint.pt``), or ``study.json``'s
    ``depends_on`` when a run has not finished, to the stage that loaded no checkpoint; that
    stage's recorded ``config.encoder_weights`` (its ``metrics.json``, else ``study.json``)
    names the start. The profile's chain token (``imagenet``) is never trusted.

    Args:
        results_dir: ``results/<study>``.
        run: one run of ``study.json``'s ``runs``.
        runs: all of them (for ``depends_on``); read from ``study.json`` when None.

    Returns:
        ``imagenet``, ``scratch`` or a weights file's name (:func:`start_label`).
    """
    results_dir = Path(results_dir)
    if runs is None:
        runs = load_study(results_dir).runs
    by_id = {r["run_id"]: r for r in runs}
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


def collect_runs(results_dir: str | Path, protocol: str = "clean") -> pd.DataFrame:
    """One row per run listed in ``study.json`` with its test and held-out scores.

    Columns: run_id, kind, dataset, arch, encoder, loss, fold, seed, start (what the chain's
    first stage really started from: ``imagenet`` or ``scratch``, :func:`chain_start`), chain
    (stages before the run's dataset, first token the real start: ``"scratch>hand"``),
    profile_chain (as the profile names it: ``"imagenet>hand"``), status ("done" | "missing"), unit, protocol, thresholds,
    test_mre, test_sdr_t1..t4, test_mean_shape_mre, heldout_mre, heldout_sdr_t1..t4,
    heldout_mean_shape_mre, data_source, wrist_pair. A run whose ``metrics.json`` is absent is
    listed as "missing" (never silently dropped).
    """
    if protocol not in PROTOCOLS:
        raise XLMError(f"unknown protocol {protocol!r}; allowed: {list(PROTOCOLS)}")
    study = load_study(results_dir)
    rows = []
    for run in study.runs:
        cfg = run.get("config") or {}
        start = chain_start(results_dir, run, study.runs)
        row = {
            "run_id": run["run_id"],
            "kind": run["kind"],
            "dataset": run.get("dataset") or cfg.get("dataset"),
            "arch": run.get("arch") or cfg.get("arch"),
            "encoder": run.get("encoder") or cfg.get("encoder"),
            "loss": run.get("loss") or cfg.get("loss"),
            "fold": run.get("fold", cfg.get("fold")),
            "seed": run.get("seed", cfg.get("seed", 0)),
            "start": start,
            "chain": honest_chain(chain_before(run), start),
            "profile_chain": chain_label(chain_before(run)),
            "protocol": protocol,
        }
        path = run_dir(results_dir, run["run_id"]) / "metrics.json"
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


def _mean_std(values: pd.Series) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0.0 for one value, as nothing varies)."""
    v = values.dropna().astype(float)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _aggregate(group: pd.DataFrame, split: str) -> dict:
    out: dict = {}
    out["mre"], out["mre_std"] = _mean_std(group[f"{split}_mre"])
    for i in range(1, MAX_THRESHOLDS + 1):
        col = f"{split}_sdr_t{i}"
        if col in group:
            out[f"sdr_t{i}"], out[f"sdr_t{i}_std"] = _mean_std(group[col])
        else:
            out[f"sdr_t{i}"], out[f"sdr_t{i}_std"] = math.nan, math.nan
    return out


def _single(group: pd.DataFrame, column: str) -> object:
    values = group[column].dropna().unique() if column in group else []
    return values[0] if len(values) == 1 else ("mixed" if len(values) else None)


# --------------------------------------------------------------------------- Table 1


def backbone_table(results_dir: str | Path, protocol: str = "clean") -> pd.DataFrame:
    """Table 1: one row per (arch, encoder) over the CV folds' held-out parts, then a mean-shape row.

    Columns: arch, encoder, dataset, n_folds, n_runs, mre, mre_std, sdr_t1.., sdr_t1_std..,
    thresholds, unit, protocol, evaluated_on, profile, data_source. Mean and std (ddof=1) over
    folds (and seeds when there are several). Runs without metrics are counted in ``n_missing``.
    """
    study = load_study(results_dir)
    runs = collect_runs(results_dir, protocol)
    runs = runs[runs["kind"] == "backbone"] if len(runs) else runs
    if len(runs) == 0:
        raise XLMError(f"{Path(results_dir) / 'study.json'}: no backbone runs in this study")
    rows = []
    for (arch, encoder), group in runs.groupby(["arch", "encoder"], sort=False):
        done = group[group["status"] == "done"]
        if "heldout_mre" not in done:
            done = done.assign(heldout_mre=np.nan)
        row = {"arch": arch, "encoder": encoder, "dataset": _single(group, "dataset")}
        row["n_folds"] = int(done.loc[done["heldout_mre"].notna(), "fold"].nunique())
        row["n_runs"] = int(done["heldout_mre"].notna().sum())
        row["n_missing"] = int(len(group) - row["n_runs"])
        row.update(_aggregate(done, "heldout"))
        row["mean_shape_mre"] = _mean_std(done.get("heldout_mean_shape_mre", pd.Series(dtype=float)))[0]
        row.update(
            thresholds=_single(done, "thresholds"),
            unit=_single(done, "unit"),
            wrist_pair=_wrist_text(done),
            data_source=_single(done, "data_source") or study.data_source,
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    baseline = {
        "arch": MEAN_SHAPE,
        "encoder": "",
        "dataset": _single(table, "dataset"),
        "n_folds": int(table["n_folds"].max()),
        "n_runs": int(table["n_folds"].max()),
        "n_missing": 0,
        "mre": float(np.nanmean(table["mean_shape_mre"])) if table["mean_shape_mre"].notna().any() else math.nan,
        "mre_std": math.nan,
        "thresholds": _single(table, "thresholds"),
        "unit": _single(table, "unit"),
        "wrist_pair": _single(table, "wrist_pair"),
        "data_source": _single(table, "data_source"),
    }
    table = pd.concat([table, pd.DataFrame([baseline])], ignore_index=True)
    table = table.drop(columns=["mean_shape_mre"])
    table["protocol"] = protocol
    table["evaluated_on"] = "held-out CV fold"
    table["profile"] = study.profile
    return table


def _wrist_text(group: pd.DataFrame) -> str | None:
    if "wrist_pair" not in group:
        return None
    pairs = {tuple(p) for p in group["wrist_pair"] if isinstance(p, (list, tuple))}
    if not pairs:
        return None
    if len(pairs) > 1:
        return "mixed"
    a, b = pairs.pop()
    return f"{a}-{b} (1-based)"


# --------------------------------------------------------------------------- Table 2


def transfer_table(
    results_dir: str | Path, protocol: str = "clean", with_stats: bool = True
) -> pd.DataFrame:
    """Table 2: one row per (target, chain), mean and std over seeds on the test split.

    Rows of one target: each chain (``imagenet``, ``imagenet>A``, ..., ``imagenet>B>A``) then a
    ``mean-shape baseline`` row. Columns: target, chain, n_seeds, n_missing, n_images, mre, mre_std, sdr_t1..,
    sdr_t1_std.., thresholds, unit, protocol, evaluated_on, profile, data_source, and the paired
    comparison with the target's ``imagenet`` chain: delta_mre, ci_low, ci_high, p_value, p_holm
    (Holm over the chains of that target), n_paired_images (NaN / 0 when ``xlm_core.stats`` or
    per-image errors are not available; see :func:`add_paired_stats`).
    """
    study = load_study(results_dir)
    runs = collect_runs(results_dir, protocol)
    runs = runs[runs["kind"] == "transfer"] if len(runs) else runs
    if len(runs) == 0:
        raise XLMError(f"{Path(results_dir) / 'study.json'}: no transfer runs in this study")
    rows = []
    for target, tgroup in runs.groupby("dataset", sort=False):
        chains = sorted(tgroup["chain"].unique(), key=lambda c: (c.count(">"), c))
        for chain in chains:
            group = tgroup[(tgroup["chain"] == chain) & (tgroup["status"] == "done")]
            if "test_mre" not in group:
                group = group.assign(test_mre=np.nan)
            row = {"target": target, "chain": chain}
            row["n_seeds"] = int(group.loc[group["test_mre"].notna(), "seed"].nunique())
            row["n_missing"] = int((tgroup["chain"] == chain).sum() - group["test_mre"].notna().sum())
            n_img = group["test_n_images"].dropna() if "test_n_images" in group else pd.Series(dtype=float)
            row["n_images"] = int(n_img.max()) if len(n_img) else 0
            row.update(_aggregate(group, "test"))
            row.update(
                thresholds=_single(group, "thresholds"),
                unit=_single(group, "unit"),
                wrist_pair=_wrist_text(group),
                grid_hw=_single(group, "grid_hw") if "grid_hw" in group else None,
                data_source=_single(group, "data_source") or study.data_source,
                _mean_shape=_mean_std(group.get("test_mean_shape_mre", pd.Series(dtype=float)))[0],
            )
            rows.append(row)
        target_rows = [r for r in rows if r["target"] == target]
        ms = [r["_mean_shape"] for r in target_rows if not math.isnan(r["_mean_shape"])]
        rows.append(
            {
                "target": target,
                "chain": MEAN_SHAPE,
                "n_seeds": max(r["n_seeds"] for r in target_rows),
                "n_missing": 0,
                "n_images": max(r["n_images"] for r in target_rows),
                "mre": float(np.mean(ms)) if ms else math.nan,
                "mre_std": math.nan,
                "thresholds": target_rows[0]["thresholds"],
                "unit": target_rows[0]["unit"],
                "wrist_pair": target_rows[0]["wrist_pair"],
                "grid_hw": target_rows[0]["grid_hw"],
                "data_source": target_rows[0]["data_source"],
                "_mean_shape": math.nan,
            }
        )
    table = pd.DataFrame(rows).drop(columns=["_mean_shape"])
    for col in STATS_COLUMNS:
        table[col] = math.nan
    table["n_paired_images"] = 0
    if with_stats:
        table = add_paired_stats(table, runs, results_dir, protocol)
    table["protocol"] = protocol
    table["evaluated_on"] = "test split"
    table["profile"] = study.profile
    return table


def per_image_errors(run_path: str | Path, protocol: str = "clean") -> pd.Series | None:
    """Per-image mean radial error of one run on its test split, indexed by image id.

    Read from ``predictions.csv``; the file must carry an error column for the protocol
    (``error_<protocol>`` or ``error`` with a ``protocol`` column). Returns None when the file
    or the column is absent (the paired statistics are then left empty, not invented).
    """
    path = Path(run_path) / "predictions.csv"
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise XLMError(f"{path}: not a readable CSV ({exc})") from None
    if "split" in df:
        df = df[df["split"] == "test"]
    if f"error_{protocol}" in df:
        column = f"error_{protocol}"
    elif "error" in df and "protocol" in df:
        df = df[df["protocol"] == protocol]
        column = "error"
    elif "error" in df and protocol == "clean":
        column = "error"
    else:
        return _per_image_from_grid(Path(run_path), protocol)
    if "image_id" not in df:
        raise XLMError(f"{path}: no 'image_id' column")
    return df.groupby(df["image_id"].astype(str))[column].mean()


def _per_image_from_grid(run_path: Path, protocol: str) -> pd.Series | None:
    """Per-image test MRE of ``protocol`` from ``predictions_grid.npz`` (``test_errors_<protocol>``
    (N, L), written by :func:`xlm_core.evaluation.write_grid_predictions`); None when absent."""
    path = run_path / "predictions_grid.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            key = f"test_errors_{protocol}"
            if key not in npz.files or "test_ids" not in npz.files:
                return None
            errors, ids = np.asarray(npz[key], dtype=np.float64), [str(i) for i in npz["test_ids"]]
    except (OSError, ValueError) as exc:
        raise XLMError(f"{path}: not a readable .npz ({exc})") from None
    if errors.ndim != 2 or errors.shape[0] != len(ids):
        raise XLMError(f"{path}: {key} has shape {errors.shape} for {len(ids)} image ids")
    return pd.Series(errors.mean(axis=1), index=pd.Index(ids, name="image_id"))


def _stats_module():
    try:
        from xlm_core import stats  # written by the metrics engineer
    except ImportError:
        return None
    if not hasattr(stats, "compare_paired") or not hasattr(stats, "holm"):
        return None
    return stats


def add_paired_stats(
    table: pd.DataFrame, runs: pd.DataFrame, results_dir: str | Path, protocol: str
) -> pd.DataFrame:
    """Fill delta_mre, ci_low, ci_high, p_value, p_holm: each chain vs the target's single-stage
    chain (``imagenet`` or ``scratch``, whichever really ran: :func:`is_single_stage`).

    Per image, errors are averaged over seeds (same images in every run of a target), then
    ``xlm_core.stats.compare_paired(baseline, other)`` gives the mean difference (other minus
    baseline; negative = the chain helps), its bootstrap CI and the Wilcoxon signed-rank
    p-value. Holm's correction runs over the chains of ONE target (a family per target: "does
    any route through other x-ray datasets change this target's error?"), never across
    targets. ``n_paired_images``: the test images the comparison used (0 when none).
    """
    stats = _stats_module()
    if stats is None:
        return table
    table = table.copy()
    per_chain: dict[tuple[str, str], pd.Series] = {}
    done = runs[runs["status"] == "done"]
    for (target, chain), group in done.groupby(["dataset", "chain"]):
        series = [per_image_errors(run_dir(results_dir, rid), protocol) for rid in group["run_id"]]
        if not series or any(s is None for s in series):
            continue
        per_chain[(target, chain)] = pd.concat(series, axis=1).mean(axis=1)
    tested = []
    alone = {t: c for (t, c) in per_chain if is_single_stage(c)}
    for idx, row in table.iterrows():
        if is_single_stage(row["chain"]) or row["chain"] == MEAN_SHAPE:
            continue
        base = per_chain.get((row["target"], alone.get(row["target"], "")))
        other = per_chain.get((row["target"], row["chain"]))
        if base is None or other is None:
            continue
        common = base.index.intersection(other.index)
        if len(common) < 2:
            continue
        # compare_paired(a, b) reports mean(a - b): the chain first, so negative = it helps
        result = stats.compare_paired(other.loc[common].to_numpy(), base.loc[common].to_numpy())
        for col in ("delta_mre", "ci_low", "ci_high", "p_value"):
            table.loc[idx, col] = float(result[col])
        table.loc[idx, "n_paired_images"] = len(common)
        tested.append(idx)
    for target in dict.fromkeys(table.loc[tested, "target"]):
        family = [i for i in tested if table.loc[i, "target"] == target]
        p_holm = stats.holm([table.loc[i, "p_value"] for i in family])
        for i, p in zip(family, p_holm, strict=True):
            table.loc[i, "p_holm"] = float(p)
    return table


# --------------------------------------------------------------------------- verdicts


def format_p(p: float) -> str:
    """Format a p-value for a reader.

    Args:
        p: the p-value.

    Returns:
        ``0.4123 -> "0.41"``, ``0.0004 -> "< 0.001"``, NaN -> ``"n/a"``.
    """
    if p is None or not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def verdict_sentence(target: str, chain: str, delta: float, ci_low: float, ci_high: float,
                     p_holm: float, unit: str, alpha: float = ALPHA, digits: int = 2,
                     baseline: str = "imagenet") -> str:
    """One generated verdict: ``"head: imagenet>chest changes MRE by -0.05 mm (95 % CI -0.12 to
    0.02, Holm p = 0.41): no evidence of a difference"``.

    The conclusion follows the Holm-corrected p-value at ``alpha``: ``no evidence of a
    difference`` when ``p_holm >= alpha``, else ``evidence that it lowers the error`` (delta < 0)
    or ``... raises the error`` (delta > 0). Missing statistics (NaN) say so instead.

    Args:
        target: the target dataset.
        chain: the chain compared (its real start first, e.g. ``scratch>hand``).
        delta: mean per-image MRE difference, chain minus baseline.
        ci_low: lower end of its 95 % bootstrap interval.
        ci_high: upper end.
        p_holm: Holm-corrected Wilcoxon p-value.
        unit: the error unit.
        alpha: significance level.
        digits: decimals of the differences.
        baseline: the single-stage chain compared with (``scratch`` or ``imagenet``).

    Returns:
        One sentence.
    """
    if delta is None or not np.isfinite(delta) or p_holm is None or not np.isfinite(p_holm):
        return (f"{target}: {chain}: no paired comparison with {baseline} (per-image errors "
                "missing, or fewer than 2 shared test images)")
    if p_holm >= alpha:
        conclusion = "no evidence of a difference"
    elif delta < 0:
        conclusion = "evidence that it lowers the error"
    elif delta > 0:
        conclusion = "evidence that it raises the error"
    else:
        conclusion = "no evidence of a difference"
    p_text = format_p(p_holm)
    p_text = f"Holm p {p_text}" if p_text.startswith("<") else f"Holm p = {p_text}"
    return (f"{target}: {chain} vs {baseline} alone changes MRE by {delta:+.{digits}f} {unit} (95 % CI "
            f"{ci_low:.{digits}f} to {ci_high:.{digits}f}, {p_text}): {conclusion}")


def transfer_verdicts(table2: pd.DataFrame, alpha: float = ALPHA) -> list[str]:
    """One :func:`verdict_sentence` per (target, chain) of Table 2 other than the single-stage
    chain and the mean-shape row, in table order, from its delta_mre, ci_low, ci_high and p_holm.

    Args:
        table2: :func:`transfer_table`'s output.
        alpha: significance level.

    Returns:
        The sentences, each naming the chain's real start and its baseline.
    """
    sentences = []
    alone = {str(r["target"]): str(r["chain"]) for _, r in table2.iterrows()
             if is_single_stage(r["chain"])}
    for _, row in table2.iterrows():
        if is_single_stage(row["chain"]) or row["chain"] == MEAN_SHAPE:
            continue
        sentences.append(verdict_sentence(
            str(row["target"]), str(row["chain"]), float(row.get("delta_mre", math.nan)),
            float(row.get("ci_low", math.nan)), float(row.get("ci_high", math.nan)),
            float(row.get("p_holm", math.nan)), str(row.get("unit") or ""), alpha,
            baseline=alone.get(str(row["target"]), "the single-stage chain")))
    return sentences


def verdicts_markdown(table2: pd.DataFrame, study: StudyInfo | None = None,
                      alpha: float = ALPHA) -> str:
    """The transfer chapter's verdicts as a Markdown list, headed by what produced them
    (profile, data, seeds, test images, the test and the correction), all from ``table2``."""
    models = table2[~table2["chain"].map(is_single_stage) & (table2["chain"] != MEAN_SHAPE)]
    starts = sorted({str(c) for c in table2["chain"] if is_single_stage(c)})
    seeds = sorted({int(v) for v in models.get("n_seeds", pd.Series(dtype=float)).dropna()})
    paired = sorted({int(v) for v in models.get("n_paired_images", pd.Series(dtype=float)).dropna() if v})
    protocol = _single(table2, "protocol") if "protocol" in table2 else None
    alone = " / ".join(f"`{s}` ({start_text(s)})" for s in starts) or "the single-stage chain"
    head = (f"Each chain against the target trained alone, {alone}, on the same test images "
            f"(per-image MRE averaged over "
            f"{'/'.join(map(str, seeds)) or '?'} seed(s); {'/'.join(map(str, paired)) or 'no'} paired "
            "test images): mean difference (chain minus the target alone, negative = the chain helps), "
            "95 % percentile bootstrap interval, Wilcoxon signed-rank test with Holm's correction "
            f"over the chains of each target, alpha = {alpha:g}")
    if protocol:
        head += f"; {PROTOCOL_TEXT.get(str(protocol), protocol)}"
    if study is not None:
        head += f". {study.label()}"
    lines = [f"*{head}.*", ""]
    lines += [f"- {s}" for s in transfer_verdicts(table2, alpha)] or ["- no chain to compare"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- beyond the paper


def _chain_names(results_dir: str | Path, run: dict, runs: list[dict]) -> set[str]:
    """A run's chain as the profile names it and with its real start (both match a query)."""
    profile = chain_before(run)
    return {chain_label(profile), honest_chain(profile, chain_start(results_dir, run, runs))}


def chain_runs(results_dir: str | Path, chain: str = "imagenet") -> dict[str, list[dict]]:
    """Target -> the finished transfer runs of ``chain`` (``"imagenet"``: ImageNet -> target; the
    profile's label and the label with the real start, ``"scratch"``, both match),
    ordered by seed. A run counts as finished when its ``metrics.json`` exists."""
    study = load_study(results_dir)
    out: dict[str, list[dict]] = {}
    for run in study.runs:
        if run.get("kind") != "transfer" or chain not in _chain_names(results_dir, run, study.runs):
            continue
        if not (run_dir(results_dir, run["run_id"]) / "metrics.json").is_file():
            continue
        target = str(run.get("dataset") or (run.get("config") or {}).get("dataset"))
        out.setdefault(target, []).append(run)
    order = {"head": 0, "hand": 1, "chest": 2}
    return {t: sorted(r, key=lambda x: int(x.get("seed") or 0))
            for t, r in sorted(out.items(), key=lambda kv: order.get(kv[0], 9))}


def alone_label(results_dir: str | Path, target: str, chain: str = "imagenet") -> str:
    """The label a target's ``chain`` runs carry in the book, their real start first.

    Args:
        results_dir: ``results/<study>``.
        target: the target dataset.
        chain: the chain as the profile or the book names it (``imagenet``: the target alone).

    Returns:
        e.g. ``"scratch"`` for ``imagenet`` runs that loaded no ImageNet weights; ``"a/b"`` when
        the seeds started differently; ``chain`` itself when no run of it has finished.
    """
    study = load_study(results_dir)
    runs = chain_runs(results_dir, chain).get(target, [])
    labels = sorted({honest_chain(chain_before(r), chain_start(results_dir, r, study.runs)) for r in runs})
    return "/".join(labels) if labels else chain


def study_protocol_table(results_dir: str | Path, chain: str = "imagenet") -> pd.DataFrame:
    """The same predictions under every decoding x protocol (x wrist pair for the hand), per
    target, mean and std over seeds: :func:`xlm_core.analysis.run_protocol_table` on each run's
    ``predictions_grid.npz``.

    Columns: target, chain, decoding, protocol, wrist_pair (1-based, hand only), n_seeds,
    n_images, unit, mre, mre_std (over seeds; 0 for one seed), mre_change_pct (against the
    ``subpixel``/``clean`` row with Payer's pair), sdr_<t>... (means over seeds), profile,
    data_source. Runs without the file are skipped; a target with none is absent.
    """
    from xlm_core.analysis import run_protocol_table

    study = load_study(results_dir)
    frames = []
    for target, runs in chain_runs(results_dir, chain).items():
        for run in runs:
            path = run_dir(results_dir, run["run_id"])
            if not (path / "predictions_grid.npz").is_file():
                continue
            t = run_protocol_table(path, dataset=target)
            t.insert(0, "seed", run.get("seed", 0))
            frames.append(t)
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    rows["wrist_pair"] = rows["wrist_pair"].fillna("")
    keys = ["dataset", "decoding", "protocol", "wrist_pair"]
    value_cols = ["mre", "mre_change_pct"] + [c for c in rows.columns if c.startswith("sdr_")]
    out = []
    for key, group in rows.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True))
        row.update(n_seeds=int(group["seed"].nunique()), n_images=int(group["n_images"].iloc[0]),
                   unit=group["unit"].iloc[0], mre_std=_mean_std(group["mre"])[1])
        if "measured_on" in group:
            row["measured_on"] = _single(group, "measured_on")
            row["grid_step"] = float(group["grid_step"].mean()) if group["grid_step"].notna().any() else math.nan
        for col in value_cols:
            row[col] = float(group[col].mean()) if group[col].notna().any() else math.nan
        out.append(row)
    table = pd.DataFrame(out).rename(columns={"dataset": "target"})
    table.insert(1, "chain", chain)
    table["profile"] = study.profile
    table["data_source"] = study.data_source
    first = ["target", "chain", "decoding", "protocol", "wrist_pair", "n_seeds", "n_images", "unit",
             "measured_on", "grid_step", "mre", "mre_std", "mre_change_pct"]
    first = [c for c in first if c in table]
    return table[first + [c for c in table.columns if c not in first]]


def protocol_display(rows: pd.DataFrame, digits: int = 3) -> tuple[pd.DataFrame, list[str]]:
    """One target's rows of :func:`study_protocol_table` as the book shows them, each protocol's
    unit naming the grid it is measured on, and a note wherever a grid pixel is coarser than an
    SDR threshold (its SDR there counts exact grid hits only).

    Args:
        rows: the rows of one target.
        digits: decimals.

    Returns:
        (text table: decoding, protocol, wrist pair (1-based), measured on, one grid px, MRE,
        MRE std, MRE change, SDR columns; footnotes).
    """
    unit = str(rows["unit"].iloc[0])
    sdr = [c for c in rows.columns if c.startswith("sdr_")]
    out = pd.DataFrame({
        "decoding": rows["decoding"].to_numpy(), "protocol": rows["protocol"].to_numpy(),
        "wrist pair (1-based)": [v or DASH for v in rows["wrist_pair"]],
        "measured on": rows.get("measured_on", pd.Series([DASH] * len(rows))).fillna(DASH).to_numpy(),
        f"one grid px ({unit})": [format_cell(v, digits) for v in rows.get("grid_step", [math.nan] * len(rows))],
        f"MRE ({unit})": [format_cell(v, digits) for v in rows["mre"]],
        f"MRE std ({unit})": [format_cell(v, digits) for v in rows["mre_std"]],
        "MRE change (%)": [format_cell(v, 1) for v in rows["mre_change_pct"]],
    })
    for c in sdr:
        out[f"SDR {c[4:]} {unit} (%)"] = [format_cell(v, digits) for v in rows[c]]
    notes = [(f"one grid px: the size of one pixel of the test grid in {unit}, for the zhu protocol "
             f"(integer positions on that grid); {DASH} for clean (sub-pixel, in the original image).")]
    thresholds = [float(c[4:]) for c in sdr]
    for _, r in rows.iterrows():
        step = r.get("grid_step", math.nan)
        coarse = [t for t in thresholds if not _missing(step) and step > t]
        if coarse:
            pair = f", wrist pair {r['wrist_pair']}" if r.get("wrist_pair") else ""
            notes.append(f"{r['protocol']}{pair}: one grid pixel is {step:.3g} {unit}, coarser "
                         f"than the SDR threshold(s) {', '.join(f'{t:g}' for t in coarse)} {unit}: there the "
                         "SDR counts exact grid hits only, so it can be equal across those thresholds.")
    return out, list(dict.fromkeys(notes))


def study_error_matrices(results_dir: str | Path, chain: str = "imagenet") -> dict[str, dict]:
    """Target -> the test errors of ``chain``'s runs (``predictions.csv``, the clean protocol):
    ``errors`` (n_seeds x N, L) in the dataset's unit (seeds stacked, so SDR over the rows is
    the mean SDR over seeds), ``ids`` (one per row), ``seeds``, ``run_ids``, ``unit``,
    ``thresholds`` (from metrics.json)."""
    from xlm_core.analysis import read_error_matrix

    out: dict[str, dict] = {}
    for target, runs in chain_runs(results_dir, chain).items():
        ids, blocks, seeds, run_ids = [], [], [], []
        unit, thresholds = "", []
        for run in runs:
            path = run_dir(results_dir, run["run_id"])
            if not (path / "predictions.csv").is_file():
                continue
            metrics = load_metrics(path / "metrics.json")
            run_ids_, errors = read_error_matrix(path / "predictions.csv", split="test")
            ids += run_ids_
            blocks.append(errors)
            seeds += [run.get("seed", 0)] * len(run_ids_)
            run_ids.append(run["run_id"])
            unit = str(metrics.get("unit") or unit)
            thresholds = [float(t) for t in metrics.get("thresholds") or thresholds]
        if blocks:
            if len({b.shape[1] for b in blocks}) != 1:
                raise XLMError(f"{results_dir}: runs of {target!r} differ in landmark count")
            out[target] = {"errors": np.concatenate(blocks), "ids": ids, "seeds": seeds,
                           "run_ids": run_ids, "unit": unit, "thresholds": thresholds}
    return out


def per_landmark_tables(results_dir: str | Path, chain: str = "imagenet") -> pd.DataFrame:
    """Per-landmark MRE and SDR per target (:func:`xlm_core.analysis.per_landmark_table` over the
    seeds' stacked test errors). Columns: target, chain, landmark (1-based), name, n_seeds,
    n_rows (images x seeds), unit, mre, mre_std, median, max, sdr_<t>..., profile, data_source."""
    from xlm_core.analysis import per_landmark_table

    study = load_study(results_dir)
    frames = []
    for target, m in study_error_matrices(results_dir, chain).items():
        t = per_landmark_table(m["errors"], m["thresholds"])
        t.insert(0, "target", target)
        t.insert(1, "chain", chain)
        t.insert(4, "n_seeds", len(set(m["seeds"])))
        t.insert(5, "n_rows", int(m["errors"].shape[0]))
        t.insert(6, "unit", m["unit"])
        frames.append(t)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    table["profile"] = study.profile
    table["data_source"] = study.data_source
    return table


def human_limit_for_study(results_dir: str | Path, csv_dir: str | Path | None = None,
                          repo: str | Path | None = None) -> tuple[list[dict] | None, str]:
    """The head's inter-observer rows for a study and a sentence saying where they come from.

    Real head data in the study (``data_source`` "real" and a head root): the dataset's own
    senior and junior annotations on its test split. Otherwise Payer et al.'s CSVs (found by
    :func:`xlm_core.analysis.find_payer_csv_dir` from ``csv_dir``), images 151-400. Returns
    ``(rows, source)``; ``rows`` is None when neither is available, and ``source`` then says
    why (never raises for absent data).
    """
    from xlm_core.analysis import (
        ISBI_TEST_IDS,
        PAYER_SOURCE,
        find_payer_csv_dir,
        human_limit_from_dataset,
    )
    from xlm_core.human_limit import human_limit_from_payer

    study = load_study(results_dir)
    root = data_roots(study).get("head")
    note = ""
    if root and study.data_source == "real":
        try:
            rows = human_limit_from_dataset(root)
            return rows, f"real ISBI annotations (the head dataset at {root}: senior and junior folders), test split"
        except XLMError as exc:
            note = f" (the study's head dataset could not be used: {exc})"
    folder = find_payer_csv_dir(csv_dir, repo)
    if folder is None:
        where = csv_dir or "../shared/data/head/payer_setup (relative to the repository)"
        return None, (f"no human-limit data: Payer et al.'s all_senior.csv / all_junior.csv not found "
                      f"in {where}; set human_limit_csv_dir{note}")
    rows = human_limit_from_payer(folder / "all_senior.csv", folder / "all_junior.csv",
                                  list(ISBI_TEST_IDS))
    return rows, PAYER_SOURCE + note


def models_beside_human(table2: pd.DataFrame, human: pd.DataFrame, study: StudyInfo,
                        target: str = "head") -> pd.DataFrame:
    """The head's models (Table 2 rows of ``target``) and the human limit in one table, each row
    labelled with what it was measured on (``source``): the models' data (synthetic phantoms or
    real, with the profile) and the annotations' (e.g. real ISBI, images 151-400). Columns:
    who, source, n_images, unit, mre, mre_std, sdr_t1..t4, thresholds."""
    rows = []
    models = table2[table2["target"] == target]
    data = "synthetic phantoms" if study.data_source == "synthetic" else f"{study.data_source} data"
    for _, r in models.iterrows():
        who = "mean-shape baseline" if r["chain"] == MEAN_SHAPE else f"model {r['chain']}>{target}"
        row = {"who": who, "source": f"{data}, {study.profile} profile, test split, "
               f"mean over {int(r['n_seeds'])} seed(s)", "n_images": r.get("n_images", math.nan),
               "unit": r["unit"], "mre": r["mre"], "mre_std": r["mre_std"], "thresholds": r["thresholds"]}
        for i in range(1, MAX_THRESHOLDS + 1):
            row[f"sdr_t{i}"] = r.get(f"sdr_t{i}", math.nan)
        rows.append(row)
    sdr_cols = [c for c in human.columns if c.startswith("sdr_")]
    for _, h in human.iterrows():
        row = {"who": f"annotators: {h['comparison']}", "source": h["source"], "n_images": h["n_images"],
               "unit": h["unit"], "mre": h["mre"], "mre_std": h["mre_std"],
               "thresholds": ";".join(c[len("sdr_"):] for c in sdr_cols)}
        for i, c in enumerate(sdr_cols[:MAX_THRESHOLDS], start=1):
            row[f"sdr_t{i}"] = h[c]
        rows.append(row)
    out = pd.DataFrame(rows)
    return out


# --------------------------------------------------------------------------- Table 3


def load_literature() -> pd.DataFrame:
    """The published figures shipped with the package (``xlm_core/data/literature.csv``).

    Columns: table (1, 2 or 3 of Di Via et al. 2024), method, dataset, chain, arch, encoder,
    mre, mre_std, unit, sdr_t1..t4, thresholds, source. Values are as printed in the paper.
    """
    with resources.files("xlm_core").joinpath("data/literature.csv").open() as fh:
        return pd.read_csv(fh, dtype={"thresholds": str, "chain": str})


def sota_table(results_dir: str | Path) -> pd.DataFrame:
    """Table 3: the published methods, then ours (the single-stage chain per target, named by its
    real start, ``imagenet`` or ``scratch``; both protocols; ``grid_hw`` the test grid).

    Published values go in ``published_*`` columns, ours in ``ours_*`` columns: a row never
    holds both. Columns: dataset, method, source, protocol, unit, thresholds, published_mre,
    published_sdr_t1..t4, ours_mre, ours_mre_std, ours_sdr_t1..t4, n_seeds, profile, data_source.
    """
    study = load_study(results_dir)
    lit = load_literature()
    lit = lit[lit["table"] == 3]
    rows = []
    for _, r in lit.iterrows():
        row = {
            "dataset": r["dataset"],
            "method": r["method"],
            "source": PUBLISHED_LABEL,
            "protocol": "as published",
            "unit": r["unit"],
            "thresholds": r["thresholds"],
            "published_mre": r["mre"],
        }
        for i in range(1, MAX_THRESHOLDS + 1):
            row[f"published_sdr_t{i}"] = r[f"sdr_t{i}"]
        rows.append(row)
    for protocol in PROTOCOLS:
        try:
            t2 = transfer_table(results_dir, protocol, with_stats=False)
        except XLMError:
            continue
        for _, r in t2[t2["chain"].map(is_single_stage)].iterrows():
            row = {
                "dataset": r["target"],
                "method": f"this study: U-Net++/VGG19, {r['chain']}>{r['target']}",
                "start": r["chain"],
                "grid_hw": r.get("grid_hw"),
                "source": f"this study ({study.profile} profile, {r['data_source']} data)",
                "protocol": protocol,
                "unit": r["unit"],
                "thresholds": r["thresholds"],
                "ours_mre": r["mre"],
                "ours_mre_std": r["mre_std"],
                "n_seeds": r["n_seeds"],
                "data_source": r["data_source"],
            }
            for i in range(1, MAX_THRESHOLDS + 1):
                row[f"ours_sdr_t{i}"] = r[f"sdr_t{i}"]
            rows.append(row)
    table = pd.DataFrame(rows)
    order = {"head": 0, "hand": 1, "chest": 2}
    table["_order"] = table["dataset"].map(order).fillna(9)
    table = table.sort_values(["_order"], kind="stable").drop(columns=["_order"]).reset_index(drop=True)
    table["profile"] = study.profile
    return table


#: the test grid (H, W) of the published figures whose unit is a grid pixel (the chest's px:
#: the paper's and Zhu et al.'s 512x512 grid, ../shared/docs/protocols.md)
PUBLISHED_PX_GRID = {"chest": "512x512"}


def _not_comparable(row: pd.Series, unit: str, grid: str | None) -> str | None:
    """Why our Table 3 row cannot sit beside published figures in ``unit`` (None: it can)."""
    if row["protocol"] != "zhu":
        return "the clean protocol (errors in the original image) is not the published protocol"
    if str(row["unit"]) != unit:
        return f"its unit is {row['unit']}, the published {unit}"
    if grid and row.get("grid_hw") != grid:
        return (f"its px are of the {row.get('grid_hw')} test grid, the published of the {grid} grid: "
                "not the same unit")
    return None


def sota_comparable(table3: pd.DataFrame) -> pd.DataFrame:
    """Table 3 without our rows that are not on the published protocol and unit (for the figure).

    Args:
        table3: :func:`sota_table`'s output.

    Returns:
        The published rows and only those of ours that :func:`sota_side_by_side` shows.
    """
    keep = []
    for idx, r in table3.iterrows():
        if _missing(r.get("ours_mre")):
            keep.append(idx)
            continue
        published = table3[(table3["dataset"] == r["dataset"]) & table3["published_mre"].notna()]
        if published.empty:
            continue
        unit = str(published["unit"].iloc[0])
        grid = PUBLISHED_PX_GRID.get(str(r["dataset"])) if unit == "px" else None
        if _not_comparable(r, unit, grid) is None:
            keep.append(idx)
    return table3.loc[keep].reset_index(drop=True)


def sota_side_by_side(table3: pd.DataFrame, dataset: str, digits: int = 2) -> tuple[pd.DataFrame, list[str]]:
    """Table 3 for one dataset as the book shows it: the published methods and our ``zhu`` row
    in the same columns, only when our row is on the same protocol and unit as theirs.

    The published figures use Zhu et al.'s evaluation (integer argmax on the resized grid); our
    ``zhu`` row follows it. Ours is left out, with a note saying why, when its unit differs
    (e.g. px of a 64x64 grid against px of the paper's 512x512 grid) or it has no ``zhu`` row.

    Args:
        table3: :func:`sota_table`'s output.
        dataset: ``head``, ``hand`` or ``chest``.
        digits: decimals.

    Returns:
        (text table: method, source, MRE (unit), SDR <t> unit (%)...; footnotes).
    """
    rows = table3[table3["dataset"] == dataset]
    published = rows[rows["published_mre"].notna() | rows.filter(like="published_sdr").notna().any(axis=1)]
    ours = rows[rows.get("ours_mre", pd.Series(index=rows.index, dtype=float)).notna()]
    notes: list[str] = []
    if published.empty:
        return pd.DataFrame(), [f"{dataset}: no published figures"]
    unit = str(published["unit"].iloc[0])
    thresholds = str(published["thresholds"].iloc[0]).split(";")
    grid = PUBLISHED_PX_GRID.get(dataset) if unit == "px" else None
    unit_text = f"{unit}, {grid} grid" if grid else unit
    shown = []
    for _, r in published.iterrows():
        row = {"method": r["method"], "figures": "published", f"MRE ({unit_text})": format_cell(r["published_mre"], digits)}
        for i, t in enumerate(thresholds, start=1):
            row[f"SDR {t} {unit} (%)"] = format_cell(r.get(f"published_sdr_t{i}"), digits)
        shown.append(row)
    for _, r in ours.iterrows():
        why = _not_comparable(r, unit, grid)
        if why:
            notes.append(f"Not shown: ours ({r['method']}, {r['protocol']} protocol, "
                         f"MRE {format_cell(r['ours_mre'], digits)} {r['unit']}): {why}.")
            continue
        row = {"method": r["method"], "figures": f"this study ({r['data_source']} data, zhu protocol, "
               f"mean of {DASH if _missing(r.get('n_seeds')) else int(r['n_seeds'])} seed(s))",
               f"MRE ({unit_text})": format_mean_std(r["ours_mre"], r.get("ours_mre_std"), digits)}
        for i, t in enumerate(thresholds, start=1):
            row[f"SDR {t} {unit} (%)"] = format_cell(r.get(f"ours_sdr_t{i}"), digits)
        shown.append(row)
    if ours.empty:
        notes.append(f"No row of ours: this study has no finished single-stage run on {dataset}.")
    return pd.DataFrame(shown), notes


# --------------------------------------------------------------------------- output and display


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV atomically (floats with up to 6 significant digits)."""
    path = Path(path)
    atomic_write(path, lambda fh: table.to_csv(fh, index=False, float_format="%.6g"))
    return path


#: what a table shows for a value that does not exist (explained in a footnote under the table)
DASH = "—"
DASH_NOTE = f"{DASH}: no value (not measured for this row, or the row has no such threshold)"


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_mean_std(mean: float, std: float | None = None, digits: int = 2) -> str:
    """Format a mean and its spread for a table cell.

    Args:
        mean: the mean (NaN or None: no value).
        std: its standard deviation; NaN or None is left out.
        digits: decimals.

    Returns:
        ``"1.23 ± 0.05"``; ``"—"`` for a missing mean (see :data:`DASH_NOTE`).
    """
    if _missing(mean):
        return DASH
    text = f"{float(mean):.{digits}f}"
    if not _missing(std):
        text += f" ± {float(std):.{digits}f}"
    return text


def format_cell(value: object, digits: int = 2) -> str:
    """One table cell as text: integers as integers, floats to ``digits`` decimals, NaN as ``—``.

    Args:
        value: the cell.
        digits: decimals of non-integral floats.

    Returns:
        The text shown.
    """
    if _missing(value):
        return DASH
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class HtmlTable:
    """A formatted table for a notebook cell: HTML without an index column, in its own
    horizontally scrolling box, with footnotes under it; plain text for ``text/plain``."""

    def __init__(self, table: pd.DataFrame, notes: list[str], digits: int) -> None:
        self.table = table
        self.notes = notes
        self.digits = digits

    def cells(self) -> list[list[str]]:
        """The body's cells as shown (strings)."""
        return [[format_cell(v, self.digits) for v in row] for row in self.table.itertuples(index=False)]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{_html_escape(str(c))}</th>" for c in self.table.columns)
        body = "".join("<tr>" + "".join(f"<td>{_html_escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.cells())
        notes = "".join(f'<p class="xlm-table-note"><small>{_html_escape(n)}</small></p>'
                        for n in self.notes)
        return (f'<div class="xlm-table" style="overflow-x:auto;max-width:100%">'
                f'<table class="dataframe"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
                f"{notes}</div>")

    def __repr__(self) -> str:
        shown = pd.DataFrame(self.cells(), columns=[str(c) for c in self.table.columns])
        return "\n".join([shown.to_string(index=False), *self.notes])


def readable_columns(table: pd.DataFrame, unit: str = "") -> pd.DataFrame:
    """Rename a computed table's columns for a reader, with units in the headers.

    Args:
        table: a table with columns such as ``mre``, ``mre_std``, ``sdr_2.5``, ``n_images``,
            ``landmark``, ``mre_change_pct``, ``wrist_pair``.
        unit: the error unit of the ``mre``-like and ``sdr_*`` columns.

    Returns:
        A copy with readable headers (``MRE (mm)``, ``SDR 2.5 mm (%)``, ``landmark (1-based)``).
    """
    u = f" ({unit})" if unit else ""
    names = {"mre": f"MRE{u}", "mre_std": f"MRE std{u}", "median": f"median{u}", "max": f"max{u}",
             "max_error": f"max error{u}", "mean_shape_mre": f"mean-shape MRE{u}",
             "n_images": "n images", "n_landmarks": "n landmarks", "n_seeds": "n seeds",
             "mre_change_pct": "MRE change (%)", "wrist_pair": "wrist pair (1-based)",
             "landmark": "landmark (1-based)", "worst_landmark": "worst landmark (1-based)",
             "image_id": "image"}
    for col in table.columns:
        if str(col).startswith("sdr_") and not str(col).startswith("sdr_t"):
            names[col] = f"SDR {str(col)[4:]}{' ' + unit if unit else ''} (%)"
    return table.rename(columns=names)


def show_table(table: pd.DataFrame, notes: Iterable[str] = (), digits: int = 2) -> HtmlTable:
    """A table as the book shows it: chosen columns as given, no index column, integers as
    integers, floats to ``digits`` decimals, missing values as ``—`` with a footnote saying so.

    Args:
        table: the columns to show (headers with units), in order; its index is dropped.
        notes: footnotes printed under the table.
        digits: decimals of float cells that are not already text.

    Returns:
        An :class:`HtmlTable` (``display()`` it).
    """
    table = table.reset_index(drop=True)
    for col in table.columns:  # counts stored as floats (NaN-able) print as integers
        values = table[col]
        if values.dtype.kind == "f" and values.notna().any() and \
                np.all(np.mod(values.dropna(), 1) == 0) and str(col).lower().startswith(("n ", "n_", "fold", "seed")):
            table[col] = pd.Series([None if _missing(v) else int(v) for v in values], dtype=object)
    shown = HtmlTable(table, list(notes), digits)
    if any(cell == DASH for row in shown.cells() for cell in row):
        shown.notes.append(DASH_NOTE)
    return shown


def display_table(table: pd.DataFrame, keys: list[str], digits: int = 2,
                  sdr_std: bool = True) -> pd.DataFrame:
    """A human-readable copy: ``mre ± std`` and ``SDR <t> <unit>`` columns named by threshold.

    Rows of one table may have different thresholds (Table 2 across targets): then SDR columns
    stay positional (``SDR t1`` ...) and the thresholds column is kept. Paired statistics, when
    present, become ``n seeds``, ``Δ MRE (unit)``, ``95 % CI (unit)`` and ``Holm p`` (``< 0.001``).

    Args:
        table: Table 1, 2 or a published table (columns mre, mre_std, sdr_t1.., thresholds, unit).
        keys: the identifying columns kept first (e.g. ``["arch", "encoder"]``), as columns.
        digits: decimals of MRE and SDR.
        sdr_std: False shows SDR means only (narrower).

    Returns:
        A DataFrame of text cells, ``—`` where a value is missing; pass it to :func:`show_table`.
    """
    thresholds = table["thresholds"].dropna().unique() if "thresholds" in table else []
    same = len(thresholds) == 1
    units = table["unit"].dropna().unique() if "unit" in table else []
    unit = units[0] if len(units) == 1 else ""
    out = table[keys].copy().reset_index(drop=True)
    out[f"MRE ({unit})" if unit else "MRE"] = [
        format_mean_std(m, s, digits) for m, s in zip(table["mre"], table["mre_std"], strict=True)
    ]
    names = str(thresholds[0]).split(";") if same else []
    for i in range(1, MAX_THRESHOLDS + 1):
        col = f"sdr_t{i}"
        if col not in table or table[col].isna().all():
            continue
        name = f"SDR {names[i - 1]} {unit} (%)" if same and i <= len(names) else f"SDR t{i} (%)"
        std = table.get(f"{col}_std") if sdr_std else None
        out[name] = [
            format_mean_std(m, s, digits)
            for m, s in zip(table[col], std if std is not None else [None] * len(table), strict=True)
        ]
    if not same and "thresholds" in table:
        out["thresholds"] = table["thresholds"].fillna(DASH).to_numpy()
        out["unit"] = table["unit"].fillna(DASH).to_numpy()
    for col, name in (("n_folds", "n folds"), ("n_seeds", "n seeds")):
        if col in table and not table[col].isna().all():
            out[name] = [format_cell(int(v) if not _missing(v) else v) for v in table[col]]
    if "delta_mre" in table and not table["delta_mre"].isna().all():
        u = f" ({unit})" if unit else ""
        out[f"Δ MRE{u}"] = [DASH if _missing(v) else f"{float(v):+.{digits}f}" for v in table["delta_mre"]]
        out[f"95 % CI{u}"] = [DASH if _missing(lo) or _missing(hi) else f"{lo:.{digits}f} to {hi:.{digits}f}"
                              for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)]
        out["Holm p"] = [DASH if _missing(v) else format_p(float(v)) for v in table["p_holm"]]
    return out


def summary_markdown(results_dir: str | Path, protocol: str = "clean") -> str:
    """The introduction's answer, generated from Table 2: per target, best chain vs the target
    trained alone, each chain named by its real start (``scratch`` or ``imagenet``).

    Names the profile and the data source; says "synthetic" loudly when it is.
    """
    study = load_study(results_dir)
    lines = [
        (f"*Generated from `{study.name}` (profile **{study.profile}**, "
        f"**{study.data_source}** data, {PROTOCOL_TEXT[protocol]}).*"),
        "",
    ]
    if study.data_source != "real":
        lines += [
            "```{warning}",
            (f"These results come from synthetic phantoms (the `{study.profile}` profile). They show that the "
            "pipeline runs end to end; they say nothing about real x-rays. Run the `paper` "
            "profile on the real datasets for the study's answer."),
            "```",
            "",
        ]
    try:
        t2 = transfer_table(results_dir, protocol)
    except XLMError as exc:
        return "\n".join(lines + [f"No transfer results in this study ({exc})."])
    for target, group in t2.groupby("target", sort=False):
        models = group[group["chain"] != MEAN_SHAPE].dropna(subset=["mre"])
        base = models[models["chain"].map(is_single_stage)]
        if models.empty or base.empty:
            lines.append(f"- **{target}**: not enough finished runs to compare.")
            continue
        unit = base["unit"].iloc[0]
        best = models.loc[models["mre"].idxmin()]
        b = base.iloc[0]
        if len(models) == 1:
            verdict = "no other chain was run for this target in this study"
        elif is_single_stage(best["chain"]):
            verdict = f"no chain through other x-ray datasets beat `{b['chain']}` alone"
        else:
            verdict = f"`{best['chain']}` gave the lowest MRE"
            if not math.isnan(best.get("p_holm", math.nan)):
                p_text = format_p(best["p_holm"])
                verdict += f" (Holm-corrected p {p_text})" if p_text.startswith("<") else \
                    f" (Holm-corrected p = {p_text})"
        lines.append(
            f"- **{target}**: `{b['chain']}` alone ({start_text(str(b['chain']))}) "
            f"{b['mre']:.2f} {unit}; best "
            f"`{best['chain']}` {best['mre']:.2f} {unit} (mean over {int(best['n_seeds'])} "
            f"seed(s)): {verdict}."
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- one run


def pick_run(study: StudyInfo, kind: str = "transfer", dataset: str | None = None,
             chain: str | None = "imagenet", require_checkpoint: bool = True) -> dict | None:
    """The first run of ``study`` matching kind / dataset / chain (``"imagenet>hand"``) whose
    folder holds a checkpoint (when ``require_checkpoint``); None when there is none."""
    for run in study.runs:
        if run.get("kind") != kind:
            continue
        if dataset is not None and (run.get("dataset") or (run.get("config") or {}).get("dataset")) != dataset:
            continue
        if chain is not None and chain not in _chain_names(study.results_dir, run, study.runs):
            continue
        if require_checkpoint and not (run_dir(study.results_dir, run["run_id"]) / "checkpoint.pt").is_file():
            continue
        return run
    return None


def run_scores_table(metrics: dict) -> pd.DataFrame:
    """One run's scores, model beside the mean-shape baseline: one row per (split, protocol).

    Columns: split, protocol, unit, n_images, mre, mre_std, mean_shape_mre, sdr_t1..t4, thresholds.
    """
    rows = []
    for split in ("test", "heldout"):
        for protocol, score in (metrics.get(split) or {}).items():
            if score is None:
                continue
            items = sdr_items(score)
            row = {"split": split, "protocol": protocol, "unit": score.get("unit"),
                   "n_images": score.get("n_images"), "mre": score.get("mre"),
                   "mre_std": score.get("mre_std"), "mean_shape_mre": score.get("mean_shape_mre"),
                   "thresholds": thresholds_text(t for t, _ in items)}
            for i, (_, v) in enumerate(items[:MAX_THRESHOLDS], start=1):
                row[f"sdr_t{i}"] = v
            rows.append(row)
    return pd.DataFrame(rows).set_index(["split", "protocol"])


def transfer_report_table(metrics: dict) -> pd.DataFrame:
    """The verified-transfer report of a run (what its init checkpoint loaded) as a two-column
    table; one row saying "no init checkpoint" for a run that starts from the encoder weights."""
    report = metrics.get("transfer")
    if not report:
        source = (metrics.get("config") or {}).get("encoder_weights", "none")
        return pd.DataFrame([{"item": "init", "value": f"no init checkpoint (encoder weights: {source})"}])
    return pd.DataFrame([{"item": k, "value": json.dumps(v) if isinstance(v, (list, dict)) else v}
                         for k, v in sorted(report.items())])  # same order fresh or read back


# --------------------------------------------------------------------------- figures' arrays
# (torch is imported lazily: the tables above need only pandas)


def quiet_imports() -> None:
    """Import the torch side once with tqdm's "IProgress not found" notice silenced (raised
    through huggingface_hub in a kernel without ipywidgets): noise in every notebook's output."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import tqdm.auto  # noqa: F401

        import xlm_core.evaluation
        import xlm_core.models  # noqa: F401


def _predict_grid(model, image_hw_grid, encoder: str, loss: str, sigma: float):
    """(logits (L, H, W) numpy, decoded (L, 2) grid (x, y)) for one grey image (H, W) tensor."""
    import torch

    from xlm_core.evaluation import model_logits
    from xlm_core.losses import decode_for_loss

    model.eval()
    with torch.no_grad():
        logits = model_logits(model, image_hw_grid[None], torch.device("cpu"))
        decoded = decode_for_loss(loss, logits, sigma)
    return logits[0].float().numpy(), decoded[0].float().numpy()


def pipeline_arrays(dataset: str, root: str | Path, size_hw: tuple[int, int] = (128, 128),
                    sigma: float = 2.0, arch: str = "unetplusplus", encoder: str = "vgg19",
                    checkpoint: str | Path | None = None, loss: str = "mse", index: int = 0,
                    seed: int = 0, **options) -> dict:
    """The real intermediate arrays of the method on one training image (figure 2).

    Calls the functions training uses: the dataset loader, :class:`HeatmapDataset` (resize,
    ``to_grid``, Gaussian targets), the default augmenter (drawn from ``seed``), the model
    (``checkpoint`` of a finished run, else an untrained ``build_model(arch, encoder)``; said
    in ``model``) and the loss-aware decoder. Returns ``image`` (H, W), ``landmarks_grid``
    (L, 2), ``targets`` (L, H, W), ``augmented_image``, ``augmented_landmarks``,
    ``augmented_targets``, ``output`` (L, H, W) logits, ``decoded`` (L, 2) grid (x, y),
    ``sigma``, ``model`` (a label), ``id``.
    """
    quiet_imports()
    import torch

    from xlm_core.augment import default_augmenter
    from xlm_core.datasets import load_dataset
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.models import build_model
    from xlm_core.torchdata import HeatmapDataset

    lset = load_dataset(dataset, str(root), **options)
    samples = lset.subset(lset.train_ids) or lset.samples
    if not samples:
        raise XLMError(f"{root}: dataset {dataset!r} has no usable sample")
    sample = samples[index % len(samples)]
    cache = PreprocessCache()
    plain = HeatmapDataset([sample], size_hw, sigma, cache)[0]
    augmented = HeatmapDataset([sample], size_hw, sigma, cache, augmenter=default_augmenter(),
                               seed=seed)[0]
    if checkpoint is not None:
        from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint

        model = model_from_checkpoint(load_checkpoint(Path(checkpoint)), Path(checkpoint))
        label = f"trained {model.xlm_spec['arch']}/{model.xlm_spec['encoder']}"
        encoder = model.xlm_spec["encoder"]
    else:
        torch.manual_seed(seed)
        model = build_model(arch, encoder, lset.n_landmarks, encoder_weights="none")
        label = f"untrained {arch}/{encoder}"
    output, decoded = _predict_grid(model, plain["image"], encoder, loss, sigma)
    return {
        "id": sample.id,
        "image": plain["image"][0].numpy(),
        "landmarks_grid": plain["landmarks_grid"].numpy(),
        "targets": plain["heatmaps"].numpy(),
        "augmented_image": augmented["image"][0].numpy(),
        "augmented_landmarks": augmented["landmarks_grid"].numpy(),
        "augmented_targets": augmented["heatmaps"].numpy(),
        "output": output,
        "decoded": decoded,
        "sigma": float(sigma),
        "model": label,
    }


def run_example(run_path: str | Path, index: int = 0) -> dict:
    """One test image of a finished run with its predicted heatmaps, on the run's test grid.

    Returns ``id``, ``image`` (H, W), ``heatmaps`` (L, H, W) logits, ``gt_grid`` and
    ``pred_grid`` (L, 2) (x, y) grid px, ``grid_hw``.
    """
    quiet_imports()
    import torch

    from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint
    from xlm_core.config import RunConfig
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.samples import run_samples
    from xlm_core.torchdata import HeatmapDataset

    path = Path(run_path) / "checkpoint.pt"
    if not path.is_file():
        raise XLMError(f"{path}: no checkpoint (the run has not trained)")
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta", ckpt)  # the checkpoint describes itself (training.checkpoint_description)
    cfg = RunConfig.from_dict(dict(meta["config"]))
    model = model_from_checkpoint(ckpt, path)
    test = run_samples(cfg).test
    if not test:
        raise XLMError(f"{path}: the run's test split is empty")
    grid_hw = tuple(int(v) for v in meta["test_size"])
    item = HeatmapDataset([test[index % len(test)]], grid_hw, float(cfg.sigma), PreprocessCache())[0]
    with torch.no_grad():
        heatmaps, pred = _predict_grid(model, item["image"], cfg.encoder, meta.get("loss", cfg.loss),
                                           float(meta.get("sigma", cfg.sigma)))
    return {
        "id": item["id"],
        "image": item["image"][0].numpy(),
        "heatmaps": heatmaps,
        "gt_grid": item["landmarks_grid"].numpy(),
        "pred_grid": pred,
        "grid_hw": grid_hw,
    }


def run_examples(run_path: str | Path, ids: Iterable[str], split: str = "test") -> list[dict]:
    """Selected images of a finished run (e.g. its worst predictions) with their predicted
    heatmaps: the model runs on these images only, on the run's test grid.

    Returns, in the order of ``ids``, dicts with ``id``, ``image`` (H, W), ``heatmaps``
    (L, H, W) logits, ``gt_grid`` and ``pred_grid`` (L, 2) (x, y) grid px, ``grid_hw``.
    Raises XLMError for a missing checkpoint or an id not in the run's ``split``.
    """
    quiet_imports()
    import torch

    from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint
    from xlm_core.config import RunConfig
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.samples import run_samples
    from xlm_core.torchdata import HeatmapDataset

    path = Path(run_path) / "checkpoint.pt"
    if not path.is_file():
        raise XLMError(f"{path}: no checkpoint (the run has not trained)")
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta", ckpt)
    cfg = RunConfig.from_dict(dict(meta["config"]))
    model = model_from_checkpoint(ckpt, path)
    samples = run_samples(cfg)
    pool = {s.id: s for s in (samples.test if split == "test" else samples.heldout)}
    ids = [str(i) for i in ids]
    missing = [i for i in ids if i not in pool]
    if missing:
        raise XLMError(f"{path}: images {missing[:5]} are not in the run's {split} split")
    grid_hw = tuple(int(v) for v in meta["test_size"])
    data = HeatmapDataset([pool[i] for i in ids], grid_hw, float(cfg.sigma), PreprocessCache())
    out = []
    for k in range(len(ids)):
        item = data[k]
        with torch.no_grad():
            heatmaps, pred = _predict_grid(model, item["image"], cfg.encoder, meta.get("loss", cfg.loss),
                                           float(meta.get("sigma", cfg.sigma)))
        out.append({"id": item["id"], "image": item["image"][0].numpy(), "heatmaps": heatmaps,
                    "gt_grid": item["landmarks_grid"].numpy(), "pred_grid": pred, "grid_hw": grid_hw})
    return out


def run_sizes(results_dir: str | Path) -> dict[str, dict]:
    """What the study's finished runs recorded per dataset: the grids they trained and tested at
    and the hand's wrist pair, from their ``metrics.json`` (``train_size``, ``test_size``,
    ``wrist_pair``, ``zhu_wrist_pair``, ``scale``).

    Args:
        results_dir: ``results/<study>``.

    Returns:
        ``{dataset: {"train_hw": "64x64", "test_hw": "64x46", "wrist_pair": "2, 6", "zhu_wrist_pair":
        "1, 5", "scale": ...}}``; a value seen differently in two runs reads ``"mixed"``; a dataset
        without a finished run is absent.
    """
    study = load_study(results_dir)
    seen: dict[str, dict[str, set]] = {}
    for run in study.runs:
        metrics = _run_metrics_or_none(Path(results_dir), run["run_id"])
        if metrics is None:
            continue
        name = str(metrics.get("dataset") or run.get("dataset"))
        entry = seen.setdefault(name, {})
        for key, field in (("train_hw", "train_size"), ("test_hw", "test_size")):
            if metrics.get(field):
                entry.setdefault(key, set()).add("x".join(str(int(v)) for v in metrics[field]))
        for key in ("wrist_pair", "zhu_wrist_pair"):
            if metrics.get(key):
                entry.setdefault(key, set()).add(", ".join(str(int(v)) for v in metrics[key]))
        if metrics.get("scale"):
            entry.setdefault("scale", set()).add(str(metrics["scale"]))
    return {name: {k: (v.pop() if len(v) == 1 else "mixed") for k, v in entry.items()}
            for name, entry in seen.items()}


def datasets_display(counts: pd.DataFrame, sizes: dict[str, dict]) -> tuple[pd.DataFrame, list[str]]:
    """The datasets chapter's table: one row per dataset, sizes and wrist pairs as the runs
    recorded them (never the paper's defaults), landmark numbers 1-based.

    Args:
        counts: :func:`dataset_examples`'s table.
        sizes: :func:`run_sizes`'s output.

    Returns:
        (text columns: dataset, data, images, landmarks, train / test images, unit, SDR
        thresholds, trained at (H x W px), tested at (H x W px), wrist pair (1-based); one
        footnote per dataset saying how its unit is measured, as the runs recorded it).
    """
    rows, notes = [], []
    for _, c in counts.iterrows():
        ran = sizes.get(str(c["dataset"]), {})
        scale = ran.get("scale") or c.get("scale")
        if scale:
            notes.append(f"{c['dataset']}: {scale}")
        pair = ran.get("wrist_pair")
        zhu_pair = ran.get("zhu_wrist_pair")
        pair_text = DASH
        if pair and c["dataset"] == "hand":
            pair_text = f"{pair} (clean)" + (f"; {zhu_pair} (zhu)" if zhu_pair else "")
        rows.append({
            "dataset": c["dataset"], "data": c["data_source"], "images": int(c["n_images"]),
            "landmarks": int(c["n_landmarks"]), "train / test images": f"{int(c['n_train'])} / {int(c['n_test'])}",
            "unit": c["unit"], "SDR thresholds": str(c["thresholds"]).replace(";", ", "),
            "trained at (H x W px)": ran.get("train_hw", DASH), "tested at (H x W px)": ran.get("test_hw", DASH),
            "wrist pair (1-based)": pair_text,
        })
    return pd.DataFrame(rows), notes


def dataset_examples(roots: dict[str, str], **options) -> tuple[list[dict], pd.DataFrame]:
    """Figure 1's examples and the counts table, one entry per dataset root.

    Returns (examples: ``[{"image" (H, W), "landmarks" (L, 2) px, "title"}]``, counts: a
    DataFrame with dataset, data_source, n_images, n_landmarks, n_train, n_test, unit,
    thresholds, train_size_hw, test_size_hw, n_problems, root).
    """
    from xlm_core.datasets import load_dataset
    from xlm_core.imageio import read_image

    examples, rows = [], []
    for name, root in roots.items():
        lset = load_dataset(name, root, **options.get(name, {}))
        rows.append({
            "dataset": name,
            "data_source": lset.data_source,
            "n_images": len(lset.samples),
            "n_landmarks": lset.n_landmarks,
            "n_train": len(lset.train_ids),
            "n_test": len(lset.test_ids),
            "unit": lset.scale.unit,
            "scale": lset.scale.describe(),
            "thresholds": thresholds_text(lset.thresholds),
            "train_size_hw": "x".join(map(str, lset.train_size)),
            "test_size_hw": "x".join(map(str, lset.test_size)),
            "n_problems": len(lset.problems),
            "root": str(root),
        })
        if lset.samples:
            s = lset.samples[0]
            examples.append({"image": read_image(s.image), "landmarks": np.asarray(s.landmarks),
                             "title": f"{name} ({lset.data_source}): {s.id}, {lset.n_landmarks} landmarks"})
    return examples, pd.DataFrame(rows)
