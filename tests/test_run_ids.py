"""Run ids of every plan in studies/*.yaml are those the code computed when tests/data/run_ids.json
was written (tests/run_ids.py): a change of the settings code retrains no user's cached study."""

from __future__ import annotations

import json

from run_ids import FIXTURE, all_run_ids


def test_every_run_id_of_every_profile_is_unchanged():
    recorded = json.loads(FIXTURE.read_text())
    now = all_run_ids()
    assert sorted(now) == sorted(recorded)
    for name, runs in recorded.items():
        assert now[name] == runs, name
