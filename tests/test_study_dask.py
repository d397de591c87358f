"""A small study on a dask.distributed LocalCluster with two workers (fake run notebook)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xlm_core.study import profile_from_dict, run_study

pytest.importorskip("distributed")

FAKE_NOTEBOOK = '''# %% tags=["parameters"]
config = {}
run_id = ""

# %%
import json, os, time
from pathlib import Path
out, init = config["out"], config["init"]
if init is not None:
    assert Path(init).parent.joinpath("metrics.json").is_file(), "ran before its dependency"
time.sleep(1.0)  # long enough for the two workers to overlap
Path(out, "checkpoint.pt").write_text("fake")
Path(out, "metrics.json").write_text(json.dumps(
    {"config": {"run_id": run_id}, "mre": 1.0, "test": {}, "worker_pid": os.getppid()}))
'''


@pytest.mark.slow
def test_small_study_on_a_local_cluster_with_two_workers(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    (nbs / "train_evaluate.py").write_text(FAKE_NOTEBOOK)
    roots = {}
    for name in ("head", "hand"):
        roots[name] = tmp_path / "data" / name
        roots[name].mkdir(parents=True)
        (roots[name] / "a.txt").write_text(name)
    raw = {
        "name": "d", "data": "real", "seeds": [0],
        "datasets": {d: {"root": str(r)} for d, r in roots.items()},
        "run": {"epochs": 1, "train_size": [32, 32]},
        "backbones": {"dataset": "hand", "folds": 2, "pairs": [["unet", "vgg19"]]},
        "transfer": {"targets": ["head"], "chains": [["imagenet", "hand", "head"]], "matched_control": False},
    }
    lines: list[str] = []
    result = run_study(profile_from_dict(raw), results=tmp_path / "r", executor="dask", workers=2,
                       notebooks=nbs, aggregate=False, log=lines.append, check=False)  # stand-in data
    assert result.exit_code == 0, (result.report.failed, lines)
    assert len(result.report.trained) == 4
    pids = {json.loads((result.plan.run_dir(r.run_id) / "metrics.json").read_text())["worker_pid"]
            for r in result.plan.runs}
    assert len(pids) == 2, "both workers ran runs"
    text = "\n".join(lines)
    assert "dask cluster" in text and "2 worker(s)" in text and "[4/4]" in text
    # a second invocation starts no cluster and trains nothing
    lines.clear()
    again = run_study(profile_from_dict(raw), results=tmp_path / "r", executor="dask", workers=2,
                      notebooks=nbs, aggregate=False, log=lines.append, check=False)
    assert again.report.trained == [] and not any("dask cluster" in x for x in lines)
    head = result.plan.runs[-1]
    assert Path(head.config["init"]).parent.name == result.plan.runs[-2].run_id


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ci_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["study", "run", "ci", "--results", str(tmp_path / "r"), "--executor", "dask", *extra]


def test_a_wrong_scheduler_address_is_one_line_before_anything_is_written(tmp_path, capsys):
    import time

    from xlm_core.cli import main

    start = time.monotonic()
    code = main(_ci_args(tmp_path, "--scheduler", f"tcp://127.0.0.1:{_free_port()}"))
    err = capsys.readouterr().err
    assert code != 0 and time.monotonic() - start < 10
    assert "no Dask scheduler at tcp://127.0.0.1:" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # no phantom, no study.json


@pytest.mark.slow
def test_a_scheduler_without_workers_is_waited_for_then_named(tmp_path, capsys):
    import subprocess
    import sys
    import time

    from xlm_core.cli import main

    port = _free_port()
    scheduler = subprocess.Popen(
        [str(Path(sys.executable).parent / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import socket

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the scheduler listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        start = time.monotonic()
        code = main(_ci_args(tmp_path, "--scheduler", f"tcp://127.0.0.1:{port}", "--worker-timeout", "3"))
        elapsed = time.monotonic() - start
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
    captured = capsys.readouterr()
    assert code != 0 and 3 <= elapsed < 60
    assert "has no worker yet; waiting up to 3 s" in captured.out
    assert f"no Dask worker joined the scheduler at tcp://127.0.0.1:{port} within 3 s" in captured.err
    assert "Traceback" not in captured.err
