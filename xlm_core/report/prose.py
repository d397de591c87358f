"""The book's generated sentences: the transfer verdicts and the study summary.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from xlm_core import XLMError
from xlm_core.report.display import format_p
from xlm_core.report.results import (
    ALPHA,
    MEAN_SHAPE,
    PROTOCOL_TEXT,
    StudyInfo,
    is_single_stage,
    single_value,
    start_text,
)
from xlm_core.report.tables import transfer_table

# --------------------------------------------------------------------------- verdicts


def verdict_sentence(target: str, chain: str, delta: float, ci_low: float, ci_high: float,
                     p_holm: float, unit: str, alpha: float = ALPHA, digits: int = 2,
                     baseline: str = "imagenet", against: str | None = None,
                     correction: str = "Holm") -> str:
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
        against: what the chain is compared with, in words (default ``"<baseline> alone"``;
            e.g. ``"its matched control scratch>head>head"``).
        correction: how ``p_holm`` was corrected (``"Holm"``; ``"uncorrected"`` for one test).

    Returns:
        One sentence.
    """
    against = against or f"{baseline} alone"
    if delta is None or not np.isfinite(delta) or p_holm is None or not np.isfinite(p_holm):
        return (f"{target}: {chain}: no paired comparison with {against} (per-image errors "
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
    label = "Holm p" if correction == "Holm" else f"p ({correction})"
    p_text = f"{label} {p_text}" if p_text.startswith("<") else f"{label} = {p_text}"
    return (f"{target}: {chain} vs {against} changes MRE by {delta:+.{digits}f} {unit} (95 % CI "
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
    singles = {(str(r["target"]), str(r["chain"])) for _, r in table2.iterrows() if is_single_stage(r["chain"])}

    def baseline_of(target: str, chain: str) -> str:  # the single stage with the chain's own start
        start = chain.split(">")[0]
        if (target, start) in singles:
            return start
        mine = [c for t, c in singles if t == target]
        return mine[0] if len(mine) == 1 else "the single-stage chain"

    def num(row, col: str) -> float:
        value = row.get(col, math.nan)
        return math.nan if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

    for _, row in table2.iterrows():
        if is_single_stage(row["chain"]) or row["chain"] == MEAN_SHAPE:
            continue
        target, unit = str(row["target"]), str(row.get("unit") or "")
        sentences.append(verdict_sentence(
            target, str(row["chain"]), num(row, "delta_mre"), num(row, "ci_low"), num(row, "ci_high"),
            num(row, "p_holm"), unit, alpha, baseline=baseline_of(target, str(row["chain"]))))
        control = row.get("control")
        if isinstance(control, str) and control and control in set(table2.loc[table2["target"] == row["target"], "chain"]):
            sentences.append(verdict_sentence(
                target, str(row["chain"]), num(row, "delta_vs_control"), num(row, "ci_low_vs_control"),
                num(row, "ci_high_vs_control"), num(row, "p_holm_vs_control"), unit, alpha,
                against=f"its matched control {control} (as many stages on {target} alone)"))
    for _, row in table2.iterrows():
        runner_up = row.get("runner_up")
        if isinstance(runner_up, str) and runner_up:
            sentences.append(verdict_sentence(
                str(row["target"]), f"the best, {row['chain']},", num(row, "delta_vs_runner_up"),
                num(row, "ci_low_vs_runner_up"), num(row, "ci_high_vs_runner_up"),
                num(row, "p_vs_runner_up"), str(row.get("unit") or ""), alpha,
                against=f"the runner-up {runner_up}", correction="uncorrected"))
    return sentences


def questions_markdown(questions: pd.DataFrame, alpha: float = ALPHA) -> str:
    """The questions table (:func:`xlm_core.report.tables.questions_table`) in sentences, one
    Markdown list per question: each comparison as a :func:`verdict_sentence` (Holm over the
    rows of a target), in the table's order; a line saying so when the table is empty."""
    if not len(questions):
        return ("*No comparison of starts or lengths: this study has no `scratch` chains "
                "(`transfer.scratch_control`) and no matched controls.*")
    lines = []
    for question, rows in questions.groupby("question", sort=False):
        lines.append(f"**{question[0].upper() + question[1:]}**")
        lines.append("")
        for _, row in rows.iterrows():
            lines.append("- " + verdict_sentence(
                str(row["target"]), str(row["chain"]), float(row["delta_mre"]), float(row["ci_low"]),
                float(row["ci_high"]), float(row["p_holm"]), str(row["unit"]), alpha,
                against=str(row["reference"])) + ".")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def verdicts_markdown(table2: pd.DataFrame, study: StudyInfo | None = None,
                      alpha: float = ALPHA) -> str:
    """The transfer chapter's verdicts as a Markdown list, headed by what produced them
    (profile, data, seeds, test images, the test and the correction), all from ``table2``."""
    models = table2[~table2["chain"].map(is_single_stage) & (table2["chain"] != MEAN_SHAPE)]
    starts = sorted({str(c) for c in table2["chain"] if is_single_stage(c)})
    seeds = sorted({int(v) for v in models.get("n_seeds", pd.Series(dtype=float)).dropna()})
    paired = sorted({int(v) for v in models.get("n_paired_images", pd.Series(dtype=float)).dropna() if v})
    protocol = single_value(table2, "protocol") if "protocol" in table2 else None
    alone = " / ".join(f"`{s}` ({start_text(s)})" for s in starts) or "the single-stage chain"
    has_control = "is_control" in table2 and bool(table2["is_control"].fillna(False).astype(bool).any())
    head = (f"Three comparisons, each on the same test images (per-image MRE averaged over "
            f"{'/'.join(map(str, seeds)) or '?'} seed(s); {'/'.join(map(str, paired)) or 'no'} paired "
            f"test images): (1) each chain against the target trained alone, {alone}; "
            + ("(2) each chain through other datasets against its matched control, the target "
               "alone trained for as many stages (about as many optimiser steps, the `steps` "
               "column), which separates in-domain data from longer training; "
               if has_control else
               "(2) no matched control in this study, so (1) cannot tell in-domain data from "
               "longer training; ")
            + "(3) each target's lowest-MRE row against the runner-up. Mean difference (the first "
            "named minus the second, negative = the first is better), 95 % percentile bootstrap "
            "interval, Wilcoxon signed-rank test; Holm's correction over the chains of each target "
            f"for (1) and (2), none for (3) (one test per target); alpha = {alpha:g}")
    small = []
    for target, rows in table2.groupby("target", sort=False):
        n = int(max([int(v) for v in rows.get("n_paired_images", pd.Series(dtype=float)).dropna()] or [0]))
        if 0 < n < 20:
            small.append(f"{target} {n} (smallest two-sided p {format_p(2.0 / 2 ** n)})")
    if small:
        head += ("; small test sets: " + ", ".join(small) + " test images: with so few, "
                 "p-values are coarse and intervals wide")
    if protocol:
        head += f"; {PROTOCOL_TEXT.get(str(protocol), protocol)}"
    if study is not None:
        head += f". {study.label()}"
    lines = [f"*{head}.*", ""]
    lines += [f"- {s}" for s in transfer_verdicts(table2, alpha)] or ["- no chain to compare"]
    return "\n".join(lines) + "\n"


def summary_markdown(study: StudyInfo, protocol: str = "clean") -> str:
    """The introduction's answer, generated from ``study``'s Table 2: per target, best chain vs
    the target trained alone, each chain named by its real start (``scratch`` or ``imagenet``).

    Names the profile and the data source; says "synthetic" loudly when it is.
    """
    lines = [
        (f"*Generated from `{study.name}` (profile **{study.profile}**, "
        f"**{study.data_source}** data, {PROTOCOL_TEXT[protocol]}).*"),
        "",
    ]
    if study.data_source != "real":
        lines += [
            "```{warning}",
            (f"These results come from synthetic phantoms (the `{study.profile}` profile). They show that the "
            "pipeline runs end to end; they say nothing about real x-rays. The `real` profile "
            "asks the question on two public real sets (the chapter *Real x-rays*), the `paper` "
            "profile on the paper's datasets."),
            "```",
            "",
        ]
    try:
        t2 = transfer_table(study, protocol)
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
        elif bool(best.get("is_control")):
            verdict = (f"the matched control `{best['chain']}` (the target alone, trained for as many "
                       "stages) gave the lowest MRE: no chain through other x-ray datasets beat "
                       "longer training on the target itself")
        else:
            verdict = f"`{best['chain']}` gave the lowest MRE"
            if not math.isnan(best.get("p_holm", math.nan)):
                p_text = format_p(best["p_holm"])
                verdict += f" (Holm-corrected p {p_text})" if p_text.startswith("<") else \
                    f" (Holm-corrected p = {p_text})"
            delta_c = best.get("delta_vs_control", math.nan)
            if isinstance(best.get("control"), str) and not pd.isna(delta_c):
                p_text = format_p(best["p_holm_vs_control"])
                verdict += (f"; against its matched control `{best['control']}` "
                            f"{float(delta_c):+.2f} {unit} (Holm p {p_text if p_text.startswith('<') else '= ' + p_text})")
        lines.append(
            f"- **{target}**: `{b['chain']}` alone ({start_text(str(b['chain']))}) "
            f"{b['mre']:.2f} {unit}; best "
            f"`{best['chain']}` {best['mre']:.2f} {unit} (mean over {int(best['n_seeds'])} "
            f"seed(s)): {verdict}."
        )
    lines += _imagenet_lines(t2, study, protocol)
    return "\n".join(lines) + "\n"


def _imagenet_lines(t2: pd.DataFrame, study: StudyInfo, protocol: str) -> list[str]:
    """What ImageNet bought per target (its single stage against the same stage from random
    weights, :func:`xlm_core.report.tables.questions_table`); nothing when no scratch run exists."""
    from xlm_core.report.tables import questions_table

    q = questions_table(t2, study, protocol)
    q = q[(q["chain"] == "imagenet") & (q["reference"] == "scratch")]
    if not len(q):
        return []
    parts = []
    for _, row in q.iterrows():
        p_text = format_p(row["p_holm"])
        parts.append(f"{row['target']} {float(row['delta_mre']):+.2f} {row['unit']} (95 % CI "
                     f"{float(row['ci_low']):.2f} to {float(row['ci_high']):.2f}, Holm p "
                     f"{p_text if p_text.startswith('<') else '= ' + p_text})")
    return ["", "**What ImageNet bought** (one stage from ImageNet weights against the same stage "
            "from random weights, on the same test images): " + "; ".join(parts)
            + ". The transfer chapter sets it beside what the other x-rays and longer training bought."]


def real_answer_markdown(study: StudyInfo, protocol: str = "clean") -> str:
    """The front page's answer on real x-rays, from the real study's result files, read as its
    chapter (``notebooks/real.py``) reads them: one paragraph per target
    (:func:`xlm_core.report.real.real_answer`).

    Args:
        study: the real study (``results/real``, :func:`~xlm_core.report.results.load_study`).
        protocol: ``clean`` or ``zhu``.

    Returns:
        Markdown: a caption line, then the paragraphs.
    """
    from xlm_core.report.real import real_answer

    return f"*Generated from `{study.name}`: {study.label(protocol)}.*\n\n" + real_answer(study, protocol)