"""Shared fixtures. Real samples live in ../shared/data (read-only); tests skip when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("XLM_SHARED_DATA", REPO.parent / "shared" / "data"))


def stand_in_roots(tmp_path: Path, names: tuple[str, ...] = ("head", "hand")) -> dict[str, Path]:
    """One tiny stand-in root per dataset name (a file named after it, for a fingerprint): for
    plans and runners that never read the data."""
    roots = {}
    for name in names:
        roots[name] = tmp_path / "data" / name
        roots[name].mkdir(parents=True)
        (roots[name] / "a.txt").write_text(name)
    return roots


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real samples not found at {path} (set XLM_SHARED_DATA)")
    return path


@pytest.fixture
def head_root() -> Path:
    return _shared("head")


@pytest.fixture
def hand_root() -> Path:
    return _shared("hand")


@pytest.fixture
def chest_root() -> Path:
    return _shared("chest")


@pytest.fixture
def real_sets_root() -> Path:
    """The data root holding ``hamedan_university_dataset/`` and ``boostnet_labeldata/``."""
    for name in ("hamedan_university_dataset", "boostnet_labeldata"):
        _shared(name)
    return SHARED_DATA
