"""The run id of every run of every plan in ``studies/*.yaml``, without data or training.

Run ids are content addresses of a run's settings and its data's fingerprint
(:mod:`xlm_core.study.plan`). Here every dataset gets a fixed stand-in fingerprint
(``fixture:<name>``) and root, so the ids depend on the profiles and the code that turns
them into runs only: ``tests/data/run_ids.json`` holds them as the code computed them, and
``tests/test_run_ids.py`` asserts that the code still does (a user's cached study is not
retrained). Regenerate it only on purpose (``python tests/run_ids.py > tests/data/run_ids.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

from xlm_core.study.plan import expand, used_datasets
from xlm_core.study.profile import load_profile

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "run_ids.json"


def plan_run_ids(profile_path: Path) -> list[dict]:
    """``[{"label", "run_id", "depends_on"}, ...]`` of the profile's plan, in plan order."""
    profile = load_profile(profile_path)
    names = used_datasets(profile)
    roots = {name: Path("/data") / name for name in names}
    prints = {name: f"fixture:{name}" for name in names}
    plan = expand(profile, roots, prints, Path("/results") / profile.name)
    return [{"label": r.label, "run_id": r.run_id, "depends_on": r.depends_on} for r in plan.runs]


def all_run_ids() -> dict[str, list[dict]]:
    return {p.stem: plan_run_ids(p) for p in sorted((REPO / "studies").glob("*.yaml"))}


if __name__ == "__main__":
    print(json.dumps(all_run_ids(), indent=1))
