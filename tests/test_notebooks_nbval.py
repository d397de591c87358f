"""nbval: re-execute the study's executed notebooks and compare their outputs with the stored ones.

The notebooks are those of ``book_study`` (tests/test_book.py: the ``ci`` profile, run once per
session): the aggregation notebooks and every finished run notebook. A cell whose output truly
varies carries ``# NBVAL_IGNORE_OUTPUT`` and a reason in the notebook source; memory addresses,
durations and long float tails are sanitised by tests/nbval_sanitize.cfg. Re-executing a run
notebook does not train again: ``train_and_evaluate`` finds the finished run and returns its
metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_book import book_study  # noqa: E402,F401  (the shared session fixture)

SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")


def _finished_run_notebooks(results: Path) -> list[Path]:
    study = json.loads((results / "study.json").read_text())
    notebooks = []
    for run in study["runs"]:
        folder = results / "runs" / run["run_id"]
        if (folder / "metrics.json").is_file() and (folder / "run.ipynb").is_file():
            notebooks.append(folder / "run.ipynb")
    return notebooks


@pytest.mark.slow
def test_executed_notebooks_reproduce(book_study: Path, tmp_path: Path) -> None:  # noqa: F811
    notebooks = sorted((book_study / "notebooks").glob("*.ipynb")) + _finished_run_notebooks(book_study)
    assert notebooks, f"{book_study}: no executed notebook"
    # nbval runs in its own pytest, from a folder without this project's pytest configuration
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
           "--nbval", "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZE),
           "--nbval-cell-timeout", "300", *map(str, notebooks)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-60:])
    assert proc.returncode == 0, f"nbval found differences or errors:\n{tail}"
    assert " passed" in tail
