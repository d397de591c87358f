"""The book's tables: Table 1 (backbones), Table 2 (transfer, with paired statistics), Table 3
(ours beside the published figures), and one run's scores (pure functions over files on disk).

SDR columns are positional, ``sdr_t1 ... sdr_t4``, with the thresholds (in the row's unit) in a
``thresholds`` column such as ``"2;2.5;3;4"`` (as in the paper's CSV files).

Why this file is over 500 lines: Table 2's paired statistics (against the target alone, the
matched control and the runner-up) share its per-image error readers; they stay beside it.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from xlm_core import XLMError
from xlm_core.report.display import DASH, format_cell, format_mean_std, is_missing
from xlm_core.report.results import (
    CONTROL_STATS_COLUMNS,
    MAX_THRESHOLDS,
    MEAN_SHAPE,
    PROTOCOLS,
    PUBLISHED_LABEL,
    RUNNER_UP_COLUMNS,
    STATS_COLUMNS,
    StudyInfo,
    aggregate_scores,
    chain_names,
    collect_runs,
    compute_control_for,
    control_for,
    is_compute_control,
    is_control,
    is_single_stage,
    mean_std,
    run_dir,
    sdr_items,
    single_value,
    thresholds_text,
)
from xlm_core.report.stats import compare_paired, holm

# --------------------------------------------------------------------------- Table 1


def backbone_table(study: StudyInfo, protocol: str = "clean") -> pd.DataFrame:
    """Table 1 of ``study`` (:func:`~xlm_core.report.results.load_study`): one row per (arch,
    encoder) over the CV folds' held-out parts, then a mean-shape row.

    Columns: arch, encoder, start (what the runs really started from: ``imagenet``, ``scratch``
    or a weights file's name, :func:`xlm_core.report.results.chain_start`), dataset, n_folds,
    n_runs, mre, mre_std, sdr_t1.., sdr_t1_std..,
    thresholds, unit, protocol, evaluated_on, profile, data_source. Mean and std (ddof=1) over
    folds (and seeds when there are several). Runs without metrics are counted in ``n_missing``.
    """
    runs = collect_runs(study, protocol)
    runs = runs[runs["kind"] == "backbone"] if len(runs) else runs
    if len(runs) == 0:
        raise XLMError(f"{study.results_dir / 'study.json'}: no backbone runs in this study")
    rows = []
    for (arch, encoder), group in runs.groupby(["arch", "encoder"], sort=False):
        done = group[group["status"] == "done"]
        if "heldout_mre" not in done:
            done = done.assign(heldout_mre=np.nan)
        row = {"arch": arch, "encoder": encoder, "start": "/".join(sorted(set(group["start"]))),
               "dataset": single_value(group, "dataset")}
        row["n_folds"] = int(done.loc[done["heldout_mre"].notna(), "fold"].nunique())
        row["n_runs"] = int(done["heldout_mre"].notna().sum())
        row["n_missing"] = int(len(group) - row["n_runs"])
        row.update(aggregate_scores(done, "heldout"))
        row["mean_shape_mre"] = mean_std(done.get("heldout_mean_shape_mre", pd.Series(dtype=float)))[0]
        row.update(
            thresholds=single_value(done, "thresholds"),
            unit=single_value(done, "unit"),
            wrist_pair=_wrist_text(done),
            data_source=single_value(done, "data_source") or study.data_source,
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    baseline = {
        "arch": MEAN_SHAPE,
        "encoder": "",
        "start": "",
        "dataset": single_value(table, "dataset"),
        "n_folds": int(table["n_folds"].max()),
        "n_runs": int(table["n_folds"].max()),
        "n_missing": 0,
        "mre": float(np.nanmean(table["mean_shape_mre"])) if table["mean_shape_mre"].notna().any() else math.nan,
        "mre_std": math.nan,
        "thresholds": single_value(table, "thresholds"),
        "unit": single_value(table, "unit"),
        "wrist_pair": single_value(table, "wrist_pair"),
        "data_source": single_value(table, "data_source"),
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
    study: StudyInfo, protocol: str = "clean", with_stats: bool = True
) -> pd.DataFrame:
    """Table 2 of ``study`` (:func:`~xlm_core.report.results.load_study`): one row per (target,
    chain), mean and std over seeds on the test split.

    Rows of one target: each chain (``imagenet``, ``imagenet>A``, ..., ``imagenet>B>A``) then a
    ``mean-shape baseline`` row. Columns: target, chain, n_seeds, n_missing, n_images, mre, mre_std, sdr_t1..,
    sdr_t1_std.., thresholds, unit, protocol, evaluated_on, profile, data_source, and the paired
    comparison with the target's ``imagenet`` chain: delta_mre, ci_low, ci_high, p_value, p_holm
    (Holm over the chains of that target), n_paired_images (NaN / 0 when per-image errors are not
    available; see :func:`add_paired_stats`); the same against the matched control with as many
    stages (``control``, ``*_vs_control``); on the best row, it against the runner-up
    (``runner_up``, ``*_vs_runner_up``); ``is_control``; ``steps`` (optimiser steps of all the
    chain's stages, mean over seeds: what a matched control matches).
    """
    every_run = collect_runs(study, protocol)
    runs = target_runs(every_run)
    if len(runs) == 0:
        raise XLMError(f"{study.results_dir / 'study.json'}: no transfer runs in this study")
    rows = []
    for target, tgroup in runs.groupby("dataset", sort=False):
        chains = sorted(tgroup["chain"].unique(), key=lambda c: (c.count(">"), c))
        for chain in chains:
            group = tgroup[(tgroup["chain"] == chain) & (tgroup["status"] == "done")]
            if "test_mre" not in group:
                group = group.assign(test_mre=np.nan)
            group = pooled_over_folds(group)
            row = {"target": target, "chain": chain}
            row["n_seeds"] = int(group.loc[group["test_mre"].notna(), "seed"].nunique())
            row["n_missing"] = int((tgroup["chain"] == chain).sum() - group["test_mre"].notna().sum())
            n_img = group["test_n_images"].dropna() if "test_n_images" in group else pd.Series(dtype=float)
            row["n_images"] = int(n_img.max()) if len(n_img) else 0
            row.update(aggregate_scores(group, "test"))
            row.update(
                thresholds=single_value(group, "thresholds"),
                unit=single_value(group, "unit"),
                wrist_pair=_wrist_text(group),
                grid_hw=single_value(group, "grid_hw") if "grid_hw" in group else None,
                data_source=single_value(group, "data_source") or study.data_source,
                _mean_shape=mean_std(group.get("test_mean_shape_mre", pd.Series(dtype=float)))[0],
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
    table["control"] = [control_for(c, t) for c, t in zip(table["chain"], table["target"], strict=True)]
    table["is_control"] = [is_control(c, t) for c, t in zip(table["chain"], table["target"], strict=True)]
    table["steps"] = chain_steps(study, table, runs, every_run)
    for col in STATS_COLUMNS + CONTROL_STATS_COLUMNS + RUNNER_UP_COLUMNS:
        table[col] = math.nan
    table["runner_up"] = None
    table["n_paired_images"] = 0
    if with_stats:
        table = add_paired_stats(table, runs, study, protocol)
    table["protocol"] = protocol
    table["evaluated_on"] = "test split"
    table["profile"] = study.profile
    return table


def target_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The transfer runs of :func:`collect_runs` that score a target: all of them, except, for a
    cross-validated dataset (one with runs per fold), its runs without a fold: those are source
    stages on the dataset's fixed split (their test images are another set, scored in the
    chapter's source table), not target rows of Table 2."""
    if not len(runs):
        return runs
    runs = runs[runs["kind"] == "transfer"]
    crossed = set(runs.loc[runs["fold"].notna(), "dataset"])
    return runs[~(runs["dataset"].isin(crossed) & runs["fold"].isna())]


def pooled_over_folds(group: pd.DataFrame) -> pd.DataFrame:
    """Runs of one chain and target with ``fold`` set (target cross-validation: each fold's test
    part is its held-out images) pooled into one row per seed: the test scores averaged with
    each fold's image count as weight (the MRE over all the seed's test images; every image
    weighs the same), ``test_n_images`` summed. A seed with a fold missing is left out (its score
    would cover some images only). Runs without folds are returned unchanged."""
    if "fold" not in group or group["fold"].isna().all() or "test_n_images" not in group:
        return group
    folds = group["fold"].nunique()
    expected = max(int(v) for v in group["folds"].dropna()) if "folds" in group and group["folds"].notna().any() \
        else folds
    rows = []
    for _, seed_runs in group.groupby("seed", sort=True):
        if seed_runs["fold"].nunique() < expected or seed_runs["test_mre"].isna().any():
            continue
        weights = seed_runs["test_n_images"].astype(float)
        row = seed_runs.iloc[0].copy()
        for col in [c for c in seed_runs.columns if c.startswith("test_") and c != "test_n_images"]:
            if pd.api.types.is_numeric_dtype(seed_runs[col]):
                row[col] = float(np.average(seed_runs[col].astype(float), weights=weights))
        row["test_n_images"] = int(weights.sum())
        row["fold"] = None
        rows.append(row)
    return pd.DataFrame(rows, columns=group.columns)


def per_image_errors(run_path: str | Path, protocol: str = "clean", split: str = "test") -> pd.Series | None:
    """Per-image mean radial error of one run on its test split (or ``split``: ``heldout``, the
    held-out fold), indexed by image id.

    Read from ``predictions.csv``; the file must carry an error column for the protocol
    (``error_<protocol>`` or ``error`` with a ``protocol`` column). Returns None when the file
    or the column is absent (the paired statistics are then left empty, not invented).
    """
    path = Path(run_path) / "predictions.csv"
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path, dtype={"image_id": str})  # "088" stays "088"
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise XLMError(f"{path}: not a readable CSV ({exc})") from None
    if "split" in df:
        df = df[df["split"] == split]
    if f"error_{protocol}" in df:
        column = f"error_{protocol}"
    elif "error" in df and "protocol" in df:
        df = df[df["protocol"] == protocol]
        column = "error"
    elif "error" in df and protocol == "clean":
        column = "error"
    else:  # the grid file holds the test split only
        return _per_image_from_grid(Path(run_path), protocol) if split == "test" else None
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


def chain_steps(study: StudyInfo, table: pd.DataFrame, runs: pd.DataFrame,
                every_run: pd.DataFrame | None = None) -> list[float]:
    """Per Table 2 row: optimiser steps of every stage of the chain (the row's run and the runs
    it starts from, through ``depends_on``), mean over the seeds' finished runs; NaN when a
    stage has not finished. ``runs``: the rows' runs (:func:`collect_runs`, its ``steps``
    column); ``every_run``: where the earlier stages are found (default: ``runs``); ``study``:
    their study (its runs' ``depends_on``)."""
    parent = {r["run_id"]: (r.get("depends_on") or [None])[0] for r in study.runs}
    done = runs[runs["status"] == "done"] if len(runs) else runs
    every = every_run if every_run is not None else runs
    every = every[every["status"] == "done"] if len(every) else every
    own = dict(zip(every["run_id"], every["steps"], strict=True)) if "steps" in every else {}

    def total(rid: str | None) -> float:
        steps, seen = 0.0, set()
        while rid and rid not in seen:
            seen.add(rid)
            if rid not in own:
                return math.nan
            steps += own[rid]
            rid = parent.get(rid)
        return steps

    out = []
    for _, row in table.iterrows():
        ids = done[(done["dataset"] == row["target"]) & (done["chain"] == row["chain"])]["run_id"]
        values = [total(r) for r in ids]
        out.append(float(np.mean(values)) if values and not any(math.isnan(v) for v in values) else math.nan)
    return out


def _per_chain_errors(runs: pd.DataFrame, results_dir: str | Path, protocol: str) -> dict[tuple[str, str], pd.Series]:
    """``{(target, chain): per-image error averaged over the chain's finished seeds}``; a chain
    with a run lacking per-image errors is left out (its comparisons stay empty)."""
    per_chain: dict[tuple[str, str], pd.Series] = {}
    done = runs[runs["status"] == "done"]
    for (target, chain), group in done.groupby(["dataset", "chain"]):
        series = [per_image_errors(run_dir(results_dir, rid), protocol) for rid in group["run_id"]]
        if not series or any(s is None for s in series):
            continue
        per_chain[(target, chain)] = pd.concat(series, axis=1).mean(axis=1)
    return per_chain


def _single_stage_for(per_chain: dict, target: str, chain: str) -> str:
    """The single-stage chain a longer ``chain`` is compared with: the one with its own start
    (``imagenet>hand`` -> ``imagenet``, ``scratch>head`` -> ``scratch``), else the target's only
    single-stage chain; "" when there is none."""
    start = str(chain).split(">")[0].split(" ")[0]
    if (target, start) in per_chain:
        return start
    alone = [c for (t, c) in per_chain if t == target and is_single_stage(c)]
    return alone[0] if len(alone) == 1 else ""


#: the comparisons of :func:`questions_table`, per target T with a longest chain of k stages
#: (labels as in Table 2: the stages before the target)
QUESTIONS = (
    ("what ImageNet buys", "one stage", "imagenet", "scratch"),
    ("what ImageNet buys", "k stages on T", "imagenet>{T*}", "scratch>{T*}"),
    ("what other x-rays buy after ImageNet", "each chain through others, vs k stages on T", "{via}", "imagenet>{T*}"),
    ("what longer training buys", "from ImageNet: k stages vs one", "imagenet>{T*}", "imagenet"),
    ("what longer training buys", "from scratch: k stages vs one", "scratch>{T*}", "scratch"),
    ("what the other x-rays buy at equal compute", "each chain vs T alone as many steps, one schedule",
     "{via}", "{compute}"),
    ("what the other x-rays buy at equal target steps", "each chain vs T alone (its target steps)",
     "{via}", "{start}"),
)


def questions_table(table2: pd.DataFrame, study: StudyInfo, protocol: str = "clean") -> pd.DataFrame:
    """The study's three questions per target, as paired comparisons on the test images.

    Per target T (k: the stages of its longest chain; ``T*``: T repeated k-1 times in a label):
    ImageNet against random weights at one stage and at k stages (``imagenet`` vs ``scratch``,
    ``imagenet>T>T`` vs ``scratch>T>T``); every chain through the other datasets against the
    matched control of as many stages (``imagenet>A>B`` vs ``imagenet>T>T``, ``imagenet>A`` vs
    ``imagenet>T``); k stages against one, from ImageNet and from scratch (how much of either
    is longer training). A comparison whose chains did not run (no ``scratch`` rows in a study
    without ``transfer.scratch_control``) is left out. Holm's correction runs over the rows of
    one target.

    Args:
        table2: :func:`transfer_table` of the same study and protocol (its honest chain labels).
        study: the study (:func:`~xlm_core.report.results.load_study`).
        protocol: ``clean`` or ``zhu``.

    Returns:
        Columns: target, question, comparison, chain, reference, mre, reference_mre, delta_mre,
        ci_low, ci_high, p_value, p_holm, n_paired_images, unit, protocol, profile, data_source.
    """
    runs = target_runs(collect_runs(study, protocol))
    per_chain = _per_chain_errors(runs, study.results_dir, protocol) if len(runs) else {}
    rows = []
    for target in dict.fromkeys(table2["target"]):
        t2 = table2[table2["target"] == target]
        chains = [c for c in t2["chain"] if c != MEAN_SHAPE]
        mre = dict(zip(t2["chain"], t2["mre"], strict=True))
        longest = max((c.count(">") + 1 for c in chains if c.startswith("imagenet")), default=1)
        repeat = ">".join([target] * (longest - 1))
        via = [c for c in chains if c.startswith("imagenet>") and not is_control(c, target)
               and not is_compute_control(c)]
        for question, comparison, chain, reference in QUESTIONS:
            if chain != "{via}":
                pairs = [(chain.replace("{T*}", repeat), reference.replace("{T*}", repeat))]
            elif reference == "{compute}":
                pairs = [(c, compute_control_for(c, chains)) for c in via]
            elif reference == "{start}":  # asked where the compute is controlled too
                pairs = [(c, c.split(">")[0]) for c in via if compute_control_for(c, chains)]
            else:
                pairs = [(c, control_for(c, target)) for c in via]
            for a, b in pairs:
                if a not in mre or b not in mre or a == b:
                    continue
                rows.append({"target": target, "question": question, "comparison": comparison,
                             "chain": a, "reference": b, "mre": mre[a], "reference_mre": mre[b],
                             "unit": t2["unit"].iloc[0], "data_source": t2["data_source"].iloc[0]})
    table = pd.DataFrame(rows, columns=["target", "question", "comparison", "chain", "reference", "mre",
                                        "reference_mre", "unit", "data_source"])
    for col in ("delta_mre", "ci_low", "ci_high", "p_value", "p_holm"):
        table[col] = math.nan
    table["n_paired_images"] = 0
    if len(table):
        pairs = [(i, table.loc[i, "reference"]) for i in table.index]
        compared = _compare_rows(table, per_chain, pairs, ("delta_mre", "ci_low", "ci_high", "p_value"))
        for idx, n_images in compared.items():
            table.loc[idx, "n_paired_images"] = n_images
        _holm_per_target(table, list(compared), "p_value", "p_holm")
    table["protocol"] = protocol
    table["profile"] = study.profile
    return table


def _compare_rows(table: pd.DataFrame, per_chain: dict, pairs: list[tuple[int, str]],
                  columns: tuple[str, ...]) -> dict[int, int]:
    """For each ``(row index, reference chain)``: the row's chain against the reference on their
    shared test images, written into ``columns`` (delta, ci_low, ci_high, p_value); returns
    ``{row index: shared test images}`` of the rows compared."""
    compared = {}
    for idx, reference in pairs:
        row = table.loc[idx]
        base = per_chain.get((row["target"], reference))
        other = per_chain.get((row["target"], row["chain"]))
        if base is None or other is None:
            continue
        common = base.index.intersection(other.index)
        if len(common) < 2:
            continue
        # compare_paired(a, b) reports mean(a - b): the row first, so negative = the row is better
        result = compare_paired(other.loc[common].to_numpy(), base.loc[common].to_numpy())
        for col, key in zip(columns, ("delta_mre", "ci_low", "ci_high", "p_value"), strict=True):
            table.loc[idx, col] = float(result[key])
        compared[idx] = len(common)
    return compared


def _holm_per_target(table: pd.DataFrame, rows: list[int], p_col: str, out_col: str) -> None:
    for target in dict.fromkeys(table.loc[rows, "target"]):
        family = [i for i in rows if table.loc[i, "target"] == target]
        for i, p in zip(family, holm([table.loc[i, p_col] for i in family]), strict=True):
            table.loc[i, out_col] = float(p)


def add_paired_stats(
    table: pd.DataFrame, runs: pd.DataFrame, study: StudyInfo, protocol: str
) -> pd.DataFrame:
    """Fill delta_mre, ci_low, ci_high, p_value, p_holm: each chain vs the target's single-stage
    chain (``imagenet`` or ``scratch``, whichever really ran: :func:`is_single_stage`); the
    ``*_vs_control`` columns: each chain vs its matched control (``control``), Holm over a
    target's chains; the ``*_vs_runner_up`` columns on a target's lowest-MRE row: it against the
    second lowest (one comparison per target, uncorrected).

    Per image, errors are averaged over seeds (same images in every run of a target), then
    :func:`xlm_core.report.stats.compare_paired` ``(other, baseline)`` gives the mean difference (other minus
    baseline; negative = the chain helps), its bootstrap CI and the Wilcoxon signed-rank
    p-value. Holm's correction runs over the chains of ONE target (a family per target: "does
    any route through other x-ray datasets change this target's error?"), never across
    targets. ``n_paired_images``: the test images the comparison used (0 when none).
    """
    table = table.copy()
    per_chain = _per_chain_errors(runs, study.results_dir, protocol)
    models = [i for i, r in table.iterrows() if r["chain"] != MEAN_SHAPE]
    vs_start = [(i, _single_stage_for(per_chain, table.loc[i, "target"], table.loc[i, "chain"]))
                for i in models if not is_single_stage(table.loc[i, "chain"])]
    tested = _compare_rows(table, per_chain, vs_start, ("delta_mre", "ci_low", "ci_high", "p_value"))
    for idx, n_images in tested.items():
        table.loc[idx, "n_paired_images"] = n_images
    _holm_per_target(table, list(tested), "p_value", "p_holm")
    # each chain against the matched control with as many stages: "more in-domain data" beyond
    # "more training"; Holm over the chains of a target again
    vs_control = [(i, table.loc[i, "control"]) for i in models if table.loc[i, "control"]]
    compared = _compare_rows(table, per_chain, vs_control, CONTROL_STATS_COLUMNS[:4])
    _holm_per_target(table, list(compared), "p_vs_control", "p_holm_vs_control")
    # the best row of a target against the runner-up: is the winner distinguishable at all?
    for target in dict.fromkeys(table.loc[models, "target"]):
        ranked = table.loc[[i for i in models if table.loc[i, "target"] == target]].dropna(subset=["mre"])
        ranked = ranked.sort_values("mre", kind="stable")
        if len(ranked) < 2:
            continue
        best, second = ranked.index[0], ranked.index[1]
        if _compare_rows(table, per_chain, [(best, table.loc[second, "chain"])], RUNNER_UP_COLUMNS[1:]):
            table.loc[best, "runner_up"] = table.loc[second, "chain"]
    return table


# --------------------------------------------------------------------------- Table 3


def load_literature() -> pd.DataFrame:
    """The published figures shipped with the package (``xlm_core/data/literature.csv``).

    Columns: table (1, 2 or 3 of Di Via et al. 2024), method, dataset, chain, arch, encoder,
    mre, mre_std, unit, sdr_t1..t4, thresholds, source. Values are as printed in the paper.
    """
    with resources.files("xlm_core").joinpath("data/literature.csv").open() as fh:
        return pd.read_csv(fh, dtype={"thresholds": str, "chain": str})


def sota_table(study: StudyInfo) -> pd.DataFrame:
    """Table 3 of ``study`` (:func:`~xlm_core.report.results.load_study`): the published methods,
    then ours (the single-stage chain per target, named by its real start, ``imagenet`` or
    ``scratch``; both protocols; ``grid_hw`` the test grid).

    Published values go in ``published_*`` columns, ours in ``ours_*`` columns: a row never
    holds both. Columns: dataset, method, source, protocol, unit, thresholds, published_mre,
    published_sdr_t1..t4, ours_mre, ours_mre_std, ours_sdr_t1..t4, n_seeds, profile, data_source.
    """
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
            t2 = transfer_table(study, protocol, with_stats=False)
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
        if is_missing(r.get("ours_mre")):
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
               f"mean of {DASH if is_missing(r.get('n_seeds')) else int(r['n_seeds'])} seed(s))",
               f"MRE ({unit_text})": format_mean_std(r["ours_mre"], r.get("ours_mre_std"), digits)}
        for i, t in enumerate(thresholds, start=1):
            row[f"SDR {t} {unit} (%)"] = format_cell(r.get(f"ours_sdr_t{i}"), digits)
        shown.append(row)
    if ours.empty:
        notes.append(f"No row of ours: this study has no finished single-stage run on {dataset}.")
    return pd.DataFrame(shown), notes


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
        if chain is not None and chain not in chain_names(study, run):
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
        source = shown_path((metrics.get("config") or {}).get("encoder_weights", "none"))
        return pd.DataFrame([{"item": "init", "value": f"no init checkpoint (encoder weights: {source})"}])
    return pd.DataFrame([{"item": k, "value": json.dumps(v) if isinstance(v, (list, dict))
                          else shown_path(v) if k in ("source", "unwrapped_from") else v}
                         for k, v in sorted(report.items())])  # same order fresh or read back


def shown_path(value: object) -> object:
    """A path as a page may show it: no folder of the machine that built the book.
    ``.../results/demo/runs/<id>/checkpoint.pt`` -> ``runs/<id>/checkpoint.pt``; another absolute
    path -> its file name; anything else unchanged."""
    if not isinstance(value, str) or "/" not in value and "\\" not in value:
        return value
    parts = Path(value.replace("\\", "/")).parts
    if "runs" in parts:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("runs"):])
    return parts[-1] if Path(value).is_absolute() else value
