"""The study runner: a profile (``studies/*.yaml``) -> a DAG of runs -> executed notebooks.

- :mod:`xlm_core.study.profile`: load and validate profiles (``load_profile``);
- :mod:`xlm_core.study.plan`: data roots, content fingerprints, expansion into runs (``expand``);
- :mod:`xlm_core.study.execute`: per-run locks, run states, local and Dask executors;
- :mod:`xlm_core.study.notebooks`: papermill execution of py:percent notebooks;
- :mod:`xlm_core.study.runner`: ``run_study`` / ``study_status`` behind ``xlm study``.
"""

from xlm_core.study.execute import (
    DaskExecutor,
    ExecutionReport,
    LocalExecutor,
    PapermillRunner,
    RunOutcome,
    RunTask,
    execute_plan,
    metrics_complete,
    run_done,
    run_state,
    run_task,
)
from xlm_core.study.notebooks import NotebookFailed, execute_notebook
from xlm_core.study.plan import Plan, PlannedRun, dataset_fingerprint, expand, prepare_data
from xlm_core.study.profile import Profile, all_chains, load_profile, profile_from_dict
from xlm_core.study.runner import (
    AGGREGATION_NOTEBOOKS,
    StudyResult,
    plan_study,
    run_aggregation,
    run_study,
    study_status,
)

__all__ = [
    "AGGREGATION_NOTEBOOKS",
    "DaskExecutor",
    "ExecutionReport",
    "LocalExecutor",
    "NotebookFailed",
    "PapermillRunner",
    "Plan",
    "PlannedRun",
    "Profile",
    "RunOutcome",
    "RunTask",
    "StudyResult",
    "all_chains",
    "dataset_fingerprint",
    "execute_notebook",
    "execute_plan",
    "expand",
    "load_profile",
    "metrics_complete",
    "plan_study",
    "prepare_data",
    "profile_from_dict",
    "run_aggregation",
    "run_done",
    "run_state",
    "run_study",
    "run_task",
    "study_status",
]
