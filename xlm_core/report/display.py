"""Tables on disk and on the page: CSV writing, cell formatting, HTML tables, and the datasets
chapter's table and examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from xlm_core.io import atomic_write
from xlm_core.report.results import MAX_THRESHOLDS, thresholds_text

# --------------------------------------------------------------------------- output and display


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV atomically (floats with up to 6 significant digits)."""
    path = Path(path)
    atomic_write(path, lambda fh: table.to_csv(fh, index=False, float_format="%.6g"))
    return path


#: what a table shows for a value that does not exist (explained in a footnote under the table)
DASH = "—"
DASH_NOTE = f"{DASH}: no value (not measured for this row, or the row has no such threshold)"


def is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


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


def format_mean_std(mean: float, std: float | None = None, digits: int = 2) -> str:
    """Format a mean and its spread for a table cell.

    Args:
        mean: the mean (NaN or None: no value).
        std: its standard deviation; NaN or None is left out.
        digits: decimals.

    Returns:
        ``"1.23 ± 0.05"``; ``"—"`` for a missing mean (see :data:`DASH_NOTE`).
    """
    if is_missing(mean):
        return DASH
    text = f"{float(mean):.{digits}f}"
    if not is_missing(std):
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
    if is_missing(value):
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
            table[col] = pd.Series([None if is_missing(v) else int(v) for v in values], dtype=object)
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
            out[name] = [format_cell(int(v) if not is_missing(v) else v) for v in table[col]]
    if "delta_mre" in table and not table["delta_mre"].isna().all():
        u = f" ({unit})" if unit else ""
        out[f"Δ MRE{u}"] = [DASH if is_missing(v) else f"{float(v):+.{digits}f}" for v in table["delta_mre"]]
        out[f"95 % CI{u}"] = [DASH if is_missing(lo) or is_missing(hi) else f"{lo:.{digits}f} to {hi:.{digits}f}"
                              for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)]
        out["Holm p"] = [DASH if is_missing(v) else format_p(float(v)) for v in table["p_holm"]]
    if "steps" in table and not table["steps"].isna().all():
        out["steps"] = [DASH if is_missing(v) else f"{float(v):.0f}" for v in table["steps"]]
    if "delta_vs_control" in table and not table["delta_vs_control"].isna().all():
        u = f" ({unit})" if unit else ""
        out[f"Δ vs control{u}"] = [DASH if is_missing(v) else f"{float(v):+.{digits}f}"
                                   for v in table["delta_vs_control"]]
        out["Holm p vs control"] = [DASH if is_missing(v) else format_p(float(v))
                                    for v in table["p_holm_vs_control"]]
    return out


def datasets_display(counts: pd.DataFrame, sizes: dict[str, dict]) -> tuple[pd.DataFrame, list[str]]:
    """The datasets chapter's table: one row per dataset, sizes and wrist pairs as the runs
    recorded them (never the paper's defaults), landmark numbers 1-based.

    Args:
        counts: :func:`dataset_examples`'s table.
        sizes: :func:`xlm_core.report.results.run_sizes`'s output.

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


def questions_display(rows: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """The questions table (:func:`xlm_core.report.tables.questions_table`) as strings for the
    page, narrow enough for the column: the question in a word (``ImageNet``, ``other x-rays``,
    ``longer training``), chain, reference, Δ, its 95 % CI, Holm p, both MREs, images."""
    def num(value: object) -> str:
        return DASH if is_missing(value) else f"{float(value):.{digits}f}"

    short = {"what ImageNet buys": "ImageNet", "what other x-rays buy after ImageNet": "other x-rays",
             "what longer training buys": "longer training"}
    return pd.DataFrame({
        "question": [short.get(q, q) for q in rows["question"]],
        "chain": rows["chain"],
        "vs": rows["reference"],
        "Δ MRE": [DASH if is_missing(v) else f"{float(v):+.{digits}f}" for v in rows["delta_mre"]],
        "95 % CI": [DASH if is_missing(a) else f"{float(a):.{digits}f} to {float(b):.{digits}f}"
                    for a, b in zip(rows["ci_low"], rows["ci_high"], strict=True)],
        "Holm p": [DASH if is_missing(v) else format_p(float(v)) for v in rows["p_holm"]],
        "MRE": [f"{num(a)} / {num(b)}" for a, b in zip(rows["mre"], rows["reference_mre"], strict=True)],
        "images": [int(v) for v in rows["n_paired_images"]],
    }).reset_index(drop=True)
