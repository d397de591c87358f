"""The study runner: a profile (``studies/*.yaml``) -> a DAG of runs -> executed notebooks.

- :mod:`xlm_core.study.profile`: load and validate profiles (``load_profile``);
- :mod:`xlm_core.study.plan`: data roots, content fingerprints, expansion into runs (``expand``);
- :mod:`xlm_core.study.runstate`: where a run stands (done, running, failed, pending);
- :mod:`xlm_core.study.runtask`: one run under its lock, executing its notebook;
- :mod:`xlm_core.study.executors`: local and Dask executors;
- :mod:`xlm_core.study.execute`: the DAG loop over a plan's runs (with
  :mod:`~xlm_core.study.progress` and :mod:`~xlm_core.study.pruning`);
- :mod:`xlm_core.study.resources`: GPUs, parallel runs for the cores and memory, disk used;
- :mod:`xlm_core.study.notebooks`: papermill execution of py:percent notebooks;
- :mod:`xlm_core.study.runner`: ``run_study`` / ``study_status`` behind ``xlm study``.
"""

from xlm_core.study.execute import ExecutionReport, execute_plan
from xlm_core.study.executors import DaskExecutor, LocalExecutor
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
from xlm_core.study.runstate import metrics_complete, run_done, run_state
from xlm_core.study.runtask import PapermillRunner, RunOutcome, RunTask, run_task

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
