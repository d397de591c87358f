"""Beyond the paper: both protocols per study, error matrices, per-landmark errors, the models
beside the human limit (the ``beyond`` chapter's tables).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from xlm_core import XLMError
from xlm_core.report.display import DASH, format_cell, is_missing
from xlm_core.report.results import (
    MAX_THRESHOLDS,
    MEAN_SHAPE,
    StudyInfo,
    chain_before,
    chain_names,
    chain_start,
    data_roots,
    honest_chain,
    load_metrics,
    mean_std,
    run_dir,
    single_value,
)

# --------------------------------------------------------------------------- beyond the paper




def chain_runs(study: StudyInfo, chain: str = "imagenet") -> dict[str, list[dict]]:
    """Target -> the finished transfer runs of ``study``'s ``chain`` (``"imagenet"``: ImageNet ->
    target; the profile's label and the label with the real start, ``"scratch"``, both match),
    ordered by seed. A run counts as finished when its ``metrics.json`` exists."""
    out: dict[str, list[dict]] = {}
    for run in study.runs:
        if run.get("kind") != "transfer" or chain not in chain_names(study, run):
            continue
        if not (run_dir(study.results_dir, run["run_id"]) / "metrics.json").is_file():
            continue
        target = str(run.get("dataset") or (run.get("config") or {}).get("dataset"))
        out.setdefault(target, []).append(run)
    order = {"head": 0, "hand": 1, "chest": 2}
    return {t: sorted(r, key=lambda x: int(x.get("seed") or 0))
            for t, r in sorted(out.items(), key=lambda kv: order.get(kv[0], 9))}


def alone_label(study: StudyInfo, target: str, chain: str = "imagenet") -> str:
    """The label a target's ``chain`` runs carry in the book, their real start first.

    Args:
        study: the study (:func:`~xlm_core.report.results.load_study`).
        target: the target dataset.
        chain: the chain as the profile or the book names it (``imagenet``: the target alone).

    Returns:
        e.g. ``"scratch"`` for ``imagenet`` runs that loaded no ImageNet weights; ``"a/b"`` when
        the seeds started differently; ``chain`` itself when no run of it has finished.
    """
    runs = chain_runs(study, chain).get(target, [])
    labels = sorted({honest_chain(chain_before(r), chain_start(study, r)) for r in runs})
    return "/".join(labels) if labels else chain


def study_protocol_table(study: StudyInfo, chain: str = "imagenet") -> pd.DataFrame:
    """The same predictions under every decoding x protocol (x wrist pair for the hand), per
    target, mean and std over seeds: :func:`xlm_core.report.analysis.run_protocol_table` on each run's
    ``predictions_grid.npz``.

    Columns: target, chain, decoding, protocol, wrist_pair (1-based, hand only), n_seeds,
    n_images, unit, mre, mre_std (over seeds; 0 for one seed), mre_change_pct (against the
    ``subpixel``/``clean`` row with Payer's pair), sdr_<t>... (means over seeds), profile,
    data_source. Runs without the file are skipped; a target with none is absent.
    """
    from xlm_core.report.analysis import run_protocol_table

    frames = []
    for target, runs in chain_runs(study, chain).items():
        for run in runs:
            path = run_dir(study.results_dir, run["run_id"])
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
                   unit=group["unit"].iloc[0], mre_std=mean_std(group["mre"])[1])
        if "measured_on" in group:
            row["measured_on"] = single_value(group, "measured_on")
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
        coarse = [t for t in thresholds if not is_missing(step) and step > t]
        if coarse:
            pair = f", wrist pair {r['wrist_pair']}" if r.get("wrist_pair") else ""
            notes.append(f"{r['protocol']}{pair}: one grid pixel is {step:.3g} {unit}, coarser "
                         f"than the SDR threshold(s) {', '.join(f'{t:g}' for t in coarse)} {unit}: there the "
                         "SDR counts exact grid hits only, so it can be equal across those thresholds.")
    return out, list(dict.fromkeys(notes))


def study_error_matrices(study: StudyInfo, chain: str = "imagenet") -> dict[str, dict]:
    """Target -> the test errors of ``chain``'s runs (``predictions.csv``, the clean protocol):
    ``errors`` (n_seeds x N, L) in the dataset's unit (seeds stacked, so SDR over the rows is
    the mean SDR over seeds), ``ids`` (one per row), ``seeds``, ``run_ids``, ``unit``,
    ``thresholds`` (from metrics.json)."""
    from xlm_core.report.analysis import read_error_matrix

    out: dict[str, dict] = {}
    for target, runs in chain_runs(study, chain).items():
        ids, blocks, seeds, run_ids = [], [], [], []
        unit, thresholds = "", []
        for run in runs:
            path = run_dir(study.results_dir, run["run_id"])
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
                raise XLMError(f"{study.results_dir}: runs of {target!r} differ in landmark count")
            out[target] = {"errors": np.concatenate(blocks), "ids": ids, "seeds": seeds,
                           "run_ids": run_ids, "unit": unit, "thresholds": thresholds}
    return out


def per_landmark_tables(study: StudyInfo, chain: str = "imagenet") -> pd.DataFrame:
    """Per-landmark MRE and SDR per target (:func:`xlm_core.report.analysis.per_landmark_table` over the
    seeds' stacked test errors). Columns: target, chain, landmark (1-based), name, n_seeds,
    n_rows (images x seeds), unit, mre, mre_std, median, max, sdr_<t>..., profile, data_source."""
    from xlm_core.report.analysis import per_landmark_table

    frames = []
    for target, m in study_error_matrices(study, chain).items():
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


def human_limit_for_study(study: StudyInfo, csv_dir: str | Path | None = None,
                          repo: str | Path | None = None) -> tuple[list[dict] | None, str]:
    """The head's inter-observer rows for a study and a sentence saying where they come from.

    Real head data in the study (``data_source`` "real" and a head root): the dataset's own
    senior and junior annotations on its test split. Otherwise Payer et al.'s CSVs (found by
    :func:`xlm_core.report.analysis.find_payer_csv_dir` from ``csv_dir``), images 151-400. Returns
    ``(rows, source)``; ``rows`` is None when neither is available, and ``source`` then says
    why (never raises for absent data).
    """
    from xlm_core.report.analysis import (
        ISBI_TEST_IDS,
        PAYER_SOURCE,
        find_payer_csv_dir,
        human_limit_from_dataset,
    )
    from xlm_core.report.human_limit import human_limit_from_payer

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
