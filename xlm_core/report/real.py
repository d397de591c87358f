"""The real-x-ray chapter's reading of a study (``studies/real.yaml``): which images every target
was tested on over its folds, how well each source stage learned its own task, the chains with
their full names, and one answer paragraph per target (the chapter's and the front page's).

A target is cross-validated (``transfer.folds``): each fold's run scores its held-out images,
so over the folds every usable image is a test image once; per chain, an image's error is
averaged over the seeds (:func:`xlm_core.report.tables.questions_table`). A source stage (a
run another run starts from, on a dataset that is not its chain's target) trains on its own
fixed split and is scored on that split's test part: its ratio to the mean shape says whether
it learned its task (<= :data:`SOURCE_RATIO` is what the study asks of a source).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xlm_core.report.results import (
    MEAN_SHAPE,
    STEPS_OF,
    StudyInfo,
    is_compute_control,
    load_metrics,
    run_dir,
)

#: a source stage that learned its own task scores at most this fraction of its mean shape
SOURCE_RATIO = 0.35


def full_chain(chain: str, target: str) -> str:
    """A Table 2 label with its target: ``imagenet>spine`` -> ``imagenet>spine>ceph``;
    ``imagenet (steps of imagenet>spine)`` -> ``imagenet>ceph (steps of imagenet>spine>ceph)``."""
    chain = str(chain)
    if chain == MEAN_SHAPE:
        return chain
    if is_compute_control(chain):
        own, matched = chain.split(STEPS_OF, 1)
        return f"{own}>{target}{STEPS_OF}{matched[:-1]}>{target})"
    return f"{chain}>{target}"


def targets_of(study: StudyInfo) -> list[str]:
    """The study's transfer targets, in the profile's order (its recorded settings)."""
    return list((study.settings.get("transfer") or {}).get("targets") or [])


def tested_images(study: StudyInfo, target: str) -> dict[str, int]:
    """``{image id: fold}`` of every image a target's cross-validated runs scored.

    Read from each fold run's ``metrics.json`` (``split.test_ids``); every run of one fold must
    have scored the same images, and the folds must not share one.

    Raises:
        ValueError: when two runs of a fold disagree or two folds share an image.
    """
    folds: dict[int, list[str]] = {}
    for run in study.runs:
        if run.get("dataset") != target or run.get("fold") is None:
            continue
        path = run_dir(study.results_dir, run["run_id"]) / "metrics.json"
        if not path.is_file():
            continue
        ids = list((load_metrics(path).get("split") or {}).get("test_ids") or [])
        fold = int(run["fold"])
        if fold in folds and folds[fold] != ids:
            raise ValueError(f"{path}: fold {fold} of {target} scored other images than another run of that fold")
        folds[fold] = ids
    out: dict[str, int] = {}
    for fold, ids in sorted(folds.items()):
        for image_id in ids:
            if image_id in out:
                raise ValueError(f"{target}: image {image_id} is in folds {out[image_id]} and {fold}")
            out[image_id] = fold
    return out


def fold_table(study: StudyInfo) -> pd.DataFrame:
    """Per target and fold: the images it held out (from the runs). Columns: target, fold,
    test images, first ids."""
    rows = []
    for target in targets_of(study):
        tested = tested_images(study, target)
        for fold in sorted(set(tested.values())):
            ids = sorted(i for i, f in tested.items() if f == fold)
            rows.append({"target": target, "fold": fold, "test images": len(ids),
                         "ids (first three)": ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")})
    return pd.DataFrame(rows)


def source_table(study: StudyInfo) -> pd.DataFrame:
    """Every source stage: a finished run on its fixed split that a later stage starts from.

    Columns: source (its chain, e.g. ``imagenet>spine``), dataset, seed, steps, test images,
    test MRE, mean shape (the mean training shape's MRE on the same images), ratio (MRE / mean
    shape), learned (ratio <= :data:`SOURCE_RATIO`), unit.
    """
    parents = {p for r in study.runs for p in (r.get("depends_on") or [])}
    rows = []
    for run in study.runs:
        if run["run_id"] not in parents or run.get("fold") is not None:
            continue
        path = run_dir(study.results_dir, run["run_id"]) / "metrics.json"
        if not path.is_file():
            continue
        m = load_metrics(path)
        clean = m["test"]["clean"]
        ratio = clean["mre"] / m["mean_shape_mre"]
        rows.append({"source": ">".join(run.get("stages") or []), "dataset": run["dataset"],
                     "seed": run.get("seed"), "steps": m.get("steps_run"), "test images": clean["n_images"],
                     "test MRE": round(clean["mre"], 2), "mean shape": round(m["mean_shape_mre"], 2),
                     "ratio": round(ratio, 3), "learned": bool(ratio <= SOURCE_RATIO), "unit": m["unit"]})
    return pd.DataFrame(rows)


def chains_table(table2: pd.DataFrame) -> pd.DataFrame:
    """Table 2 of a cross-validated study for a reader: full chain names, MRE mean and spread
    over seeds (each seed's MRE over all the target's images, pooled over the folds), optimiser
    steps, images and seeds; the mean-shape row last per target."""
    rows = []
    for _, r in table2.iterrows():
        rows.append({"target": r["target"], "chain": full_chain(r["chain"], r["target"]),
                     f"MRE ({r['unit']})": f"{r['mre']:.2f}" + ("" if pd.isna(r.get("mre_std")) or r["chain"] == MEAN_SHAPE
                                                              else f" ± {r['mre_std']:.2f}"),
                     "steps": "" if pd.isna(r.get("steps")) else f"{int(round(r['steps'])):,}",
                     "seeds": int(r["n_seeds"]), "test images": int(r["n_images"])})
    return pd.DataFrame(rows)


def _find(questions: pd.DataFrame, target: str, question: str) -> list[pd.Series]:
    rows = questions[(questions["target"] == target) & (questions["question"] == question)]
    return [r for _, r in rows.iterrows() if not pd.isna(r["delta_mre"])]


def _delta(row: pd.Series, unit: str) -> str:
    return (f"{row['delta_mre']:+.2f} {unit} [95 % CI {row['ci_low']:+.2f}, {row['ci_high']:+.2f}], "
            f"Holm p {_p(row['p_holm'])}")


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def answer_paragraphs(table2: pd.DataFrame, questions: pd.DataFrame, sources: pd.DataFrame,
                      human: dict[str, float] | None = None) -> str:
    """One Markdown paragraph per target: the paper's question and this study's answer with its
    CI (the in-domain chain at equal compute and at equal target steps), what ImageNet buys, the
    source's own quality, and the human limit where the target has two readers.

    Args:
        table2: :func:`xlm_core.report.tables.transfer_table` (targets only).
        questions: :func:`xlm_core.report.tables.questions_table` of the same table.
        sources: :func:`source_table`.
        human: ``{target: MRE of one reader against the mean of both}`` on the same images.
    """
    human = human or {}
    out = []
    for target, rows in table2.groupby("target", sort=False):
        unit = rows["unit"].iloc[0]
        mre = dict(zip(rows["chain"], rows["mre"], strict=True))
        images = int(rows["n_images"].max())
        seeds = int(rows["n_seeds"].max())
        text = [f"**{target}** ({images} images, each tested once over the folds; {seeds} seed{'' if seeds == 1 else 's'})."]
        for row in _find(questions, target, "what the other x-rays buy at equal compute"):
            source = row["chain"].split(">")[1]
            quality = sources[(sources["dataset"] == source)]
            learned = (f" The {source} source it starts from scored {quality['ratio'].mean():.2f} x its mean shape "
                       f"on its own test images ({'learned its task' if quality['learned'].all() else 'short of the 0.35 x a source that learned its task reaches'})."
                       if len(quality) else "")
            text.append(
                f"Does fine-tuning on {source} first help? `{full_chain(row['chain'], target)}` "
                f"({mre.get(row['chain'], np.nan):.2f} {unit}) against `{full_chain(row['reference'], target)}`, "
                f"the target alone for as many optimiser steps in one schedule: {_delta(row, unit)}."
                + learned)
        for row in _find(questions, target, "what the other x-rays buy at equal target steps"):
            text.append(f"Against `{full_chain(row['reference'], target)}` (as many steps on {target}): "
                        f"{_delta(row, unit)}.")
        imagenet = [r for r in _find(questions, target, "what ImageNet buys") if r["comparison"] == "one stage"]
        for row in imagenet:
            text.append(f"ImageNet against random weights (`{full_chain(row['chain'], target)}` vs "
                        f"`{full_chain(row['reference'], target)}`): {_delta(row, unit)}.")
        if not imagenet:
            text.append(f"ImageNet against random weights: not asked on {target} (no `scratch>{target}` ran).")
        if target in human:
            text.append(f"Human limit: one reader against the mean of both, {human[target]:.2f} {unit} on the same images.")
        if MEAN_SHAPE in mre:
            text.append(f"Mean shape: {mre[MEAN_SHAPE]:.2f} {unit}.")
        out.append(" ".join(text))
    return "\n\n".join(out) + "\n"


def human_limits(study: StudyInfo) -> dict[str, dict]:
    """Per target with two readers (ceph): one reader against the mean of both on every image the
    target was tested on (:func:`xlm_core.report.analysis.human_limit_from_dataset`), the row
    of the first reader; {} for a target with one reader or whose data are not on this machine."""
    from xlm_core.datasets import builtin_descriptor
    from xlm_core.report.analysis import human_limit_from_dataset

    out = {}
    for target in targets_of(study):
        root = next((r["config"]["root"] for r in study.runs if r.get("dataset") == target), None)
        tested = tested_images(study, target)
        if len(builtin_descriptor(target).sources) != 2 or not tested or not root or not Path(root).is_dir():
            continue
        rows = human_limit_from_dataset(root, ids=sorted(tested), dataset=target)
        out[target] = next(h for h in rows if h["comparison"].endswith("vs mean"))
    return out


def real_answer(study: StudyInfo, protocol: str = "clean") -> str:
    """:func:`answer_paragraphs` of a real study, read from its result files (the chapter's and
    the front page's answer)."""
    from xlm_core.report.tables import questions_table, transfer_table

    table2 = transfer_table(study, protocol)
    table2 = table2[table2["target"].isin(targets_of(study))]
    questions = questions_table(table2, study, protocol)
    human = {t: h["mre"] for t, h in human_limits(study).items()}
    return answer_paragraphs(table2, questions, source_table(study), human)


__all__ = ["SOURCE_RATIO", "answer_paragraphs", "human_limits", "real_answer", "chains_table", "fold_table", "full_chain", "source_table",
           "targets_of", "tested_images"]
