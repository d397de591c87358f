"""The book layer: a study's results folder -> tables, statistics, figures, prose, the book.

Everything that imports pandas, matplotlib or seaborn lives in this package, and nothing below it
imports it (``docs/architecture.md``; ``tests/test_architecture.py`` enforces both). Its rooms,
bottom to top:

- :mod:`~xlm_core.report.results`: reading ``results/<study>`` (study.json, metrics.json, chains)
- :mod:`~xlm_core.report.display`: CSV writing, cell formatting, HTML tables, the datasets table
- :mod:`~xlm_core.report.stats`, :mod:`~xlm_core.report.human_limit`,
  :mod:`~xlm_core.report.analysis`: paired statistics, the inter-observer limit, error analyses
- :mod:`~xlm_core.report.tables`: Tables 1-3 and one run's scores
- :mod:`~xlm_core.report.beyond`: the beyond-the-paper tables
- :mod:`~xlm_core.report.prose`: verdicts and the study summary
- :mod:`~xlm_core.report.ablation`: the ablation chapter's tables
- :mod:`~xlm_core.report.plots`: the figures
- :mod:`~xlm_core.report.book`: building the Jupyter Book (``xlm book``)

The notebooks call the tables and prose through this package; the names below are its public
face. A notebook reads its study once, ``info = report.load_study(results_dir)``, and hands the
:class:`StudyInfo` on (``report.transfer_table(info)``, ``ablation.ablation_table(info)``; the
profile's recorded settings are ``info.settings``): no report function loads a study but
:func:`~xlm_core.report.book.collect_generated`, which builds the book from a results folder (and
:func:`~xlm_core.report.book.describe`, the command line's line about it), and only
:func:`load_study` parses ``study.json``.
The arrays the figures draw (a model's outputs on chosen images) are computed below, in
:mod:`xlm_core.examples`.
"""

from __future__ import annotations

from xlm_core.examples import (
    pipeline_arrays,
    quiet_imports,
    run_example,
    run_examples,
)
from xlm_core.report.beyond import (
    alone_label,
    chain_runs,
    human_limit_for_study,
    models_beside_human,
    per_landmark_tables,
    protocol_display,
    study_error_matrices,
    study_protocol_table,
)
from xlm_core.report.display import (
    DASH,
    DASH_NOTE,
    HtmlTable,
    dataset_examples,
    datasets_display,
    display_table,
    format_cell,
    format_mean_std,
    format_p,
    is_missing,
    questions_display,
    readable_columns,
    show_table,
    write_table,
)
from xlm_core.report.prose import (
    summary_markdown,
    transfer_verdicts,
    verdict_sentence,
    questions_markdown,
    verdicts_markdown,
)
from xlm_core.report.results import (
    ALPHA,
    MAX_THRESHOLDS,
    MEAN_SHAPE,
    PROTOCOL_TEXT,
    PROTOCOLS,
    PUBLISHED_LABEL,
    START_TEXT,
    STATS_COLUMNS,
    StudyInfo,
    aggregate_scores,
    chain_before,
    chain_label,
    chain_names,
    chain_start,
    collect_runs,
    data_options,
    data_roots,
    honest_chain,
    is_single_stage,
    load_metrics,
    load_study,
    mean_std,
    run_dir,
    run_sizes,
    sdr_items,
    single_value,
    start_label,
    start_text,
    thresholds_text,
)
from xlm_core.report.tables import (
    PUBLISHED_PX_GRID,
    add_paired_stats,
    backbone_table,
    load_literature,
    per_image_errors,
    pick_run,
    run_scores_table,
    sota_comparable,
    sota_side_by_side,
    sota_table,
    transfer_report_table,
    questions_table,
    transfer_table,
)

__all__ = [
    "ALPHA",
    "DASH",
    "DASH_NOTE",
    "MAX_THRESHOLDS",
    "MEAN_SHAPE",
    "PROTOCOLS",
    "PROTOCOL_TEXT",
    "PUBLISHED_LABEL",
    "PUBLISHED_PX_GRID",
    "START_TEXT",
    "STATS_COLUMNS",
    "HtmlTable",
    "StudyInfo",
    "add_paired_stats",
    "aggregate_scores",
    "alone_label",
    "backbone_table",
    "chain_before",
    "chain_label",
    "chain_names",
    "chain_runs",
    "chain_start",
    "collect_runs",
    "data_options",
    "data_roots",
    "dataset_examples",
    "datasets_display",
    "display_table",
    "format_cell",
    "format_mean_std",
    "format_p",
    "honest_chain",
    "human_limit_for_study",
    "is_missing",
    "questions_display",
    "is_single_stage",
    "load_literature",
    "load_metrics",
    "load_study",
    "mean_std",
    "models_beside_human",
    "per_image_errors",
    "per_landmark_tables",
    "pick_run",
    "pipeline_arrays",
    "protocol_display",
    "quiet_imports",
    "readable_columns",
    "run_dir",
    "run_example",
    "run_examples",
    "run_scores_table",
    "run_sizes",
    "sdr_items",
    "show_table",
    "single_value",
    "sota_comparable",
    "sota_side_by_side",
    "sota_table",
    "start_label",
    "start_text",
    "study_error_matrices",
    "study_protocol_table",
    "summary_markdown",
    "thresholds_text",
    "transfer_report_table",
    "questions_table",
    "transfer_table",
    "transfer_verdicts",
    "verdict_sentence",
    "questions_markdown",
    "verdicts_markdown",
    "write_table",
]
