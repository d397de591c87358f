"""The study runner: expansion into a DAG, content-addressed ids, caching, failures, locks.

Fast tests inject a fake runner (writes a metrics.json, logs each call) instead of the papermill
run notebook; one test executes a tiny fake notebook through papermill; a slow test trains the
real pipeline on the ci profile's settings.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from xlm_core import XLMError
from xlm_core.cli import main as xlm_main
from xlm_core.study import (
    Plan,
    RunTask,
    dataset_fingerprint,
    expand,
    load_profile,
    profile_from_dict,
    run_state,
    run_study,
    study_status,
)
from xlm_core.study.profile import INIT_TOKEN
from xlm_core.study.runstate import metrics_complete, run_done
from xlm_core.study.runtask import run_task

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


class FakeRunner:
    """Stands in for the run notebook: appends the run id to ``log_path``, writes metrics.json.

    Fails (raises) for runs whose label contains one of ``fail_labels``.
    """

    def __init__(self, log_path: Path, fail_labels: tuple[str, ...] = (), sleep_s: float = 0.0):
        self.log_path, self.fail_labels, self.sleep_s = str(log_path), fail_labels, sleep_s

    def __call__(self, task: RunTask) -> None:
        with open(self.log_path, "a") as fh:  # O_APPEND: one line per call, also across threads
            fh.write(task.run_id + "\n")
        time.sleep(self.sleep_s)
        if any(f in task.label for f in self.fail_labels):
            raise RuntimeError(f"fake failure of {task.label}")
        (Path(task.run_dir) / "run.ipynb").write_text("{}")
        metrics = {"config": task.parameters.get("config", {}), "mre": 1.0, "test": {}, "heldout": None}
        (Path(task.run_dir) / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture(autouse=True)
def _no_preflight(monkeypatch):
    """These tests run fake runs on stand-in data, which the preflight would refuse (it has its
    own tests: tests/test_preflight.py); here it always finds the plan ready."""
    from xlm_core.study import runner
    from xlm_core.study.preflight import PreflightReport

    monkeypatch.setattr(runner, "preflight", lambda *_a, **_k: PreflightReport())


def calls(log_path: Path) -> list[str]:
    return log_path.read_text().split() if log_path.is_file() else []


@pytest.fixture
def roots(tmp_path) -> dict[str, Path]:
    """Three tiny stand-in dataset roots (the fake runner never reads them)."""
    out = {}
    for name in ("head", "hand", "chest"):
        root = tmp_path / "data" / name
        (root / "images").mkdir(parents=True)
        (root / "images" / "001.txt").write_text(f"{name} image 1")
        (root / "labels.csv").write_text(f"{name},1,2\n")
        out[name] = root
    return out


def grid(roots: dict[str, Path], **changes) -> dict:
    """The demo's grid (8 pairs x 2 folds, 15 chains) on stand-in roots, one seed."""
    raw = {
        "name": "t",
        "note": "test study",
        "data": "real",
        "datasets": {d: {"root": str(r), "test_size": [32, 32]} for d, r in roots.items()},
        "run": {"epochs": 1, "train_size": [32, 32], "lr": 1.0e-3},
        "seeds": [0],
        "backbones": {"dataset": "hand", "folds": 2},
        "transfer": {"chains": "all"},
    }
    raw.update(changes)
    return raw


def small(roots: dict[str, Path], **changes) -> dict:
    """One backbone pair x 2 folds, the paper's five chains of one target (no matched control):
    2 + 9 runs."""
    raw = grid(roots, backbones={"dataset": "hand", "folds": 2, "pairs": [["unet", "vgg19"]]},
               transfer={"targets": ["head"], "chains": "all", "matched_control": False})
    raw.update(changes)
    return raw


def plan_of(raw: dict, results: Path, prints: dict | None = None) -> Plan:
    profile = profile_from_dict(raw)
    roots = {d: Path(v["root"]) for d, v in raw["datasets"].items()}
    prints = prints or {d: "f-" + d for d in roots}
    return expand(profile, roots, prints, results / profile.name)


def quiet(*_args) -> None:
    pass


# --------------------------------------------------------------------------- expansion


def test_demo_grid_expands_to_the_papers_runs(roots, tmp_path):
    raw = grid(roots, seeds=[0, 1])
    plan = plan_of(raw, tmp_path)
    backbones = [r for r in plan.runs if r.kind == "backbone"]
    transfer = [r for r in plan.runs if r.kind == "transfer"]
    assert len(backbones) == 8 * 2 * 2  # pairs x folds x seeds
    assert len({(r.arch, r.encoder) for r in backbones}) == 8
    assert all(r.dataset == "hand" and r.config["folds"] == 2 for r in backbones)
    # the paper's 15 trainings a seed, and per target the matched control's stages T>T, T>T>T
    assert len(transfer) == (15 + 6) * 2
    for seed in (0, 1):
        stages = [len(r.chain) for r in transfer if r.seed == seed]
        assert (stages.count(1), stages.count(2), stages.count(3)) == (3, 6 + 3, 6 + 3)
        controls = sorted(tuple(r.chain) + (r.dataset,) for r in transfer
                          if r.seed == seed and set(r.chain[1:]) == {r.dataset})
        assert controls == sorted((INIT_TOKEN, *[t] * k) for t in ("head", "hand", "chest") for k in (2, 3))
    # the shipped demo profiles expand the same way, without the paper's 2 DeepLabV3 pairs; the
    # default demo adds per target and seed the scratch stages scratch>T, T>T, T>T>T, and a compute
    # control per chain through the other datasets (4 a target: T alone for the chain's summed steps)
    for name, extra in (("demo-paper-encoders", 0), ("demo", 9 + 12)):
        demo = load_profile(name)
        demo_plan = expand(demo, roots, {d: "x" for d in roots}, tmp_path / name)
        kinds = [r.kind for r in demo_plan.runs]
        n_pairs, n_folds = 6, 2
        assert kinds.count("backbone") == n_pairs * n_folds * len(demo.settings["backbones"]["seeds"])
        assert kinds.count("transfer") == (15 + 6 + extra) * len(demo.settings["seeds"])
        # the ablation runs the paper's plateau schedule, the tables' runs a cosine one: no run shared
        assert kinds.count("ablation") == 6
        steps = {r.matches: r.config["steps"] for r in demo_plan.runs if r.matches and r.seed == 0}
        assert len(steps) == 12 * (name == "demo")
        if steps:  # the summed stage steps of studies/demo.yaml: hand 91, then chest 48, then head 40
            assert steps["imagenet>hand>chest>head"] == 91 + 48 + 40 and steps["imagenet>chest>head"] == 48 + 40
    # the default demo: every ImageNet-started first stage loads ImageNet, every scratch one none
    firsts = [r for r in demo_plan.runs if r.kind == "transfer" and len(r.chain) == 1]
    assert sorted({(r.chain[0], r.config["encoder_weights"]) for r in firsts}) == [
        ("imagenet", "imagenet"), ("scratch", "none")]
    assert {r.config["encoder_weights"] for r in demo_plan.runs if r.kind == "backbone"} == {"imagenet"}


def test_scratch_control_trains_the_single_stage_and_the_matched_control_from_random_weights(roots, tmp_path):
    """transfer.scratch_control: [scratch, T] and [scratch, T, T, T] per target, with the settings
    of their ImageNet twins except encoder_weights: none (so they are other runs)."""
    raw = grid(roots, run={"epochs": 1, "train_size": [32, 32], "lr": 1.0e-3, "encoder_weights": "imagenet"},
               transfer={"targets": ["head"], "chains": "all", "scratch_control": True})
    chains = profile_from_dict(raw).settings["transfer"]["chains"]
    assert chains[-3:] == [["imagenet", "head", "head", "head"], ["scratch", "head"],
                           ["scratch", "head", "head", "head"]]
    plan = plan_of(raw, tmp_path)
    index = {tuple(r.chain) + (r.dataset,): r for r in plan.runs if r.kind == "transfer"}
    assert len(index) == 9 + 2 + 3  # the paper's 9 trainings of one target, 2 control stages, 3 scratch
    for k in (1, 2, 3):
        scratch, twin = index[("scratch", *["head"] * k)], index[("imagenet", *["head"] * k)]
        assert scratch.run_id != twin.run_id
        differ = {f for f in scratch.config if scratch.config[f] != twin.config[f]}
        assert differ <= {"encoder_weights", "init", "out"}
        if k == 1:
            assert (scratch.config["encoder_weights"], twin.config["encoder_weights"]) == ("none", "imagenet")
        else:
            assert scratch.depends_on == [index[("scratch", *["head"] * (k - 1))].run_id]
    # a chain listed by hand may start from scratch; a start token inside a chain is refused
    listed = grid(roots, transfer={"targets": ["head"], "matched_control": False,
                                   "chains": [["scratch", "hand", "head"]]})
    assert profile_from_dict(listed).settings["transfer"]["chains"] == [["scratch", "hand", "head"]]
    with pytest.raises(XLMError, match="starts with 'imagenet' or 'scratch'"):
        profile_from_dict(grid(roots, transfer={"targets": ["head"], "chains": [["imagenet", "scratch", "head"]]}))
    with pytest.raises(XLMError, match="scratch_control"):
        profile_from_dict(grid(roots, transfer={"scratch_control": 1}))


def test_matched_control_repeats_the_target_as_often_as_its_longest_chain(roots, tmp_path):
    """transfer.matched_control (default true): [imagenet, T, T, T] beside chains of 3 stages,
    sharing its first stage with the single-stage run; false: the listed chains only."""
    chains = [[INIT_TOKEN, "head"], [INIT_TOKEN, "hand", "head"], [INIT_TOKEN, "chest"]]
    raw = grid(roots, transfer={"targets": ["head", "chest"], "chains": chains})
    assert profile_from_dict(raw).settings["transfer"]["chains"] == chains + [[INIT_TOKEN, "head", "head"]]
    plan = plan_of(raw, tmp_path)
    index = {tuple(r.chain) + (r.dataset,): r for r in plan.runs if r.kind == "transfer"}
    control = index[(INIT_TOKEN, "head", "head")]
    assert control.depends_on == [index[(INIT_TOKEN, "head")].run_id]  # the single-stage run, shared
    assert sorted(index) == sorted([(INIT_TOKEN, "head"), (INIT_TOKEN, "hand"), (INIT_TOKEN, "hand", "head"),
                                   (INIT_TOKEN, "chest"), (INIT_TOKEN, "head", "head")])  # no chest control
    raw_off = grid(roots, transfer={"targets": ["head", "chest"], "chains": chains, "matched_control": False})
    assert profile_from_dict(raw_off).settings["transfer"]["chains"] == chains
    # listed by hand, a control may repeat its target; any other repeat is refused
    listed = grid(roots, transfer={"targets": ["head"], "matched_control": False,
                                   "chains": [[INIT_TOKEN, "head", "head", "head"]]})
    assert profile_from_dict(listed).settings["transfer"]["chains"] == [[INIT_TOKEN, "head", "head", "head"]]
    with pytest.raises(XLMError, match="twice"):
        profile_from_dict(grid(roots, transfer={"targets": ["head"], "chains": [[INIT_TOKEN, "hand", "hand", "head"]]}))
    with pytest.raises(XLMError, match="matched_control"):
        profile_from_dict(grid(roots, transfer={"matched_control": "yes"}))


def test_transfer_stages_start_from_the_previous_checkpoint(roots, tmp_path):
    plan = plan_of(grid(roots), tmp_path)
    by_id = plan.by_id()
    index = {(tuple(r.chain), r.dataset): r for r in plan.runs if r.kind == "transfer"}
    for (chain, dataset), run in index.items():
        if len(chain) == 1:
            assert run.depends_on == [] and run.config["init"] is None
            assert run.config["encoder_weights"] == "none"  # the profile's (none in this grid)
            continue
        parent = index[(chain[:-1], chain[-1])]
        assert run.depends_on == [parent.run_id]
        assert run.config["init"] == str(plan.run_dir(parent.run_id) / "checkpoint.pt")
        assert run.config["folds"] is None and run.config["fold"] is None
    # the hand baseline is the first stage of imagenet>hand>head: one run, shared
    hand_base = index[(("imagenet",), "hand")]
    assert set(plan.dependants(hand_base.run_id)) == {
        r.run_id for (c, d), r in index.items() if len(c) > 1 and c[1] == "hand"}
    # every run comes after the runs it depends on
    seen: set[str] = set()
    for run in plan.runs:
        assert set(run.depends_on) <= seen
        seen.add(run.run_id)
    assert len(by_id) == len(plan.runs)


def test_ids_are_stable_and_change_exactly_with_parameters(roots, tmp_path):
    base = plan_of(grid(roots), tmp_path)
    again = plan_of(grid(roots), tmp_path / "elsewhere")  # results folder does not matter
    assert [r.run_id for r in base.runs] == [r.run_id for r in again.runs]

    def changed(other: Plan) -> set[int]:
        return {i for i, (a, b) in enumerate(zip(base.runs, other.runs)) if a.run_id != b.run_id}

    def touching(dataset: str) -> set[int]:
        ids = {r.run_id for r in base.runs if r.dataset == dataset}
        for rid in list(ids):
            ids.update(base.dependants(rid))
        return {i for i, r in enumerate(base.runs) if r.run_id in ids}

    raw = grid(roots)
    raw["datasets"]["head"]["test_size"] = [64, 64]
    assert changed(plan_of(raw, tmp_path)) == touching("head")
    prints = {d: "f-" + d for d in roots} | {"chest": "changed"}
    assert changed(plan_of(grid(roots), tmp_path, prints)) == touching("chest")
    lr_changed = plan_of(grid(roots, transfer={"chains": "all", "run": {"lr": 0.5}}), tmp_path)
    assert changed(lr_changed) == {i for i, r in enumerate(base.runs) if r.kind == "transfer"}


def test_ids_do_not_depend_on_where_the_data_lies(roots, tmp_path):
    moved = {}
    for name, root in roots.items():
        moved[name] = tmp_path / "moved" / name
        moved[name].parent.mkdir(exist_ok=True)
        root.rename(moved[name])
    prints_a = {d: dataset_fingerprint(p) for d, p in moved.items()}
    a = plan_of(grid(moved), tmp_path, prints_a)
    b = plan_of(grid(roots), tmp_path, prints_a)  # same content, other paths
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    assert a.runs[0].config["root"] == str(moved["hand"])  # the notebook gets the real path


def test_fingerprint_is_a_content_hash_cached_by_size_and_mtime(roots, tmp_path):
    cache = tmp_path / "fp.json"
    root = roots["head"]
    first = dataset_fingerprint(root, cache)
    assert dataset_fingerprint(root, cache) == first and cache.is_file()
    f = root / "images" / "001.txt"
    os.utime(f, ns=(1, 1))  # touched, same content
    assert dataset_fingerprint(root, cache) == first
    f.write_text("head image 1, edited")
    assert dataset_fingerprint(root, cache) != first
    (root / ".hidden").write_text("ignored")
    f.write_text("head image 1")
    assert dataset_fingerprint(root, cache) == first


# --------------------------------------------------------------------------- execution


def test_second_invocation_trains_nothing_and_a_change_reruns_only_its_runs(roots, tmp_path):
    log = tmp_path / "calls.txt"
    results = tmp_path / "results"
    runner = FakeRunner(log)
    first = run_study(profile_from_dict(small(roots)), results=results, runner=runner,
                      aggregate=False, log=quiet)
    plan = first.plan
    assert len(plan.runs) == 11 and first.exit_code == 0
    assert sorted(calls(log)) == sorted(r.run_id for r in plan.runs)  # each run once
    study = json.loads((results / "t" / "study.json").read_text())
    assert [r["run_id"] for r in study["runs"]] == [r.run_id for r in plan.runs]
    assert study["note"] == "test study" and study["data_source"] == "real"
    t0 = time.perf_counter()
    second = run_study(profile_from_dict(small(roots)), results=results, runner=runner,
                       aggregate=False, log=quiet)
    elapsed = time.perf_counter() - t0
    assert second.report.trained == [] and len(second.report.cached) == 11
    assert len(calls(log)) == 11
    assert elapsed < 5.0, f"a cached invocation took {elapsed:.1f} s"

    raw = small(roots)
    raw["datasets"]["hand"]["test_size"] = [64, 64]  # touches the hand runs and their dependants
    third = run_study(profile_from_dict(raw), results=results, runner=runner, aggregate=False, log=quiet)
    old = {r.run_id for r in plan.runs}
    expected = {r.run_id for r in third.plan.runs if r.run_id not in old}
    hand_ids = {r.run_id for r in third.plan.runs if r.dataset == "hand"}
    assert hand_ids <= expected
    assert set(third.report.trained) == expected
    # hand backbones (2); imagenet>hand and its 3 dependants (>head, >chest, >chest>head);
    # imagenet>chest>hand and its dependant (>head)
    assert len(expected) == 2 + (1 + 3) + (1 + 1)
    assert len(calls(log)) == 11 + len(expected)


def test_a_failed_run_is_reported_and_independent_runs_go_on(roots, tmp_path, capsys):
    log = tmp_path / "calls.txt"
    results = tmp_path / "results"
    lines: list[str] = []
    runner = FakeRunner(log, fail_labels=("transfer imagenet>hand seed",))
    result = run_study(profile_from_dict(small(roots)), results=results, runner=runner,
                       aggregate=False, log=lines.append)
    report = result.report
    assert result.exit_code == 1
    assert len(report.failed) == 1
    failed = report.failed[0]
    assert failed["notebook"].endswith(f"runs/{failed['run_id']}/run.ipynb")
    assert "fake failure" in failed["error"]
    skipped = {s["run_id"] for s in report.skipped}
    assert skipped == set(result.plan.dependants(failed["run_id"])) and len(skipped) == 3
    assert len(report.trained) == 11 - 1 - 3
    text = "\n".join(lines)
    assert "FAILED" in text and failed["notebook"] in text and "depends on failed run" in text
    assert "ETA" in text and "[11/11]" in text
    states = {r["run_id"]: r["state"] for r in study_status("t", results)}
    assert states[failed["run_id"]] == "failed"
    assert all(states[s] == "pending" for s in skipped)
    assert sum(s == "done" for s in states.values()) == 7
    # the CLI prints the same table and exits 0
    assert xlm_main(["study", "status", "t", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "7 done, 0 running, 1 failed, 3 pending of 11 runs" in out


def test_two_runners_at_once_execute_each_run_exactly_once(roots, tmp_path):
    log = tmp_path / "calls.txt"
    results = tmp_path / "results"
    runner = FakeRunner(log, sleep_s=0.05)
    outcomes, logs = [], [[], []]

    def go(i: int) -> None:
        outcomes.append(run_study(profile_from_dict(small(roots)), results=results, runner=runner,
                                  aggregate=False, log=logs[i].append, poll_s=0.02))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == 2 and all(o.exit_code == 0 for o in outcomes)
    ids = calls(log)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 11  # never twice, none missed
    trained = [set(o.report.trained) for o in outcomes]
    text = "\n".join(logs[0] + logs[1])
    contended = sum(len(o.report.by_other) for o in outcomes)
    assert contended or "held by another runner" in text  # the runners did meet
    assert not (trained[0] & trained[1]) and len(trained[0] | trained[1]) == 11


def test_a_held_lock_is_reported_busy(roots, tmp_path):
    import fcntl

    run_dir = tmp_path / "runs" / "abc"
    run_dir.mkdir(parents=True)
    with open(run_dir / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.write("pid 1 on elsewhere\n")
        fh.flush()
        outcome = run_task(RunTask("abc", str(run_dir), "x", {}), FakeRunner(tmp_path / "c.txt"))
        assert outcome.state == "busy" and "pid 1" in outcome.holder
        assert run_state(run_dir) == ("running", "pid 1 on elsewhere")
    assert not (tmp_path / "c.txt").exists()
    assert run_state(run_dir)[0] == "pending"


def test_a_run_writes_who_holds_its_lock_and_clears_it_after(tmp_path):
    from xlm_core.study.runstate import lock_holder

    run_dir = tmp_path / "runs" / "abc"
    seen = []

    def runner(task):
        seen.append(lock_holder(task.run_dir))
        raise RuntimeError("no metrics")

    outcome = run_task(RunTask("abc", str(run_dir), "the label", {}), runner)
    assert outcome.state == "failed" and "RuntimeError: no metrics" in outcome.error
    assert seen[0].startswith(f"pid {os.getpid()} on ") and seen[0].endswith(": the label")
    assert (run_dir / ".lock").read_text() == "" and lock_holder(run_dir) is None


def test_incomplete_metrics_or_a_failed_notebook_is_not_done(tmp_path):
    (tmp_path / "metrics.json").write_text('{"mre": 1.0')
    assert not metrics_complete(tmp_path)
    (tmp_path / "metrics.json").write_text('{"mre": 1.0, "test": {}, "config": {}}')
    assert metrics_complete(tmp_path) and run_done(tmp_path)
    # trained, but the notebook failed afterwards (a figure cell): executed again
    (tmp_path / "status.json").write_text('{"state": "failed", "error": "cell 7", "notebook": "n"}')
    assert not run_done(tmp_path) and run_state(tmp_path)[0] == "failed"
    outcome = run_task(RunTask("x", str(tmp_path), "x", {}), FakeRunner(tmp_path / "calls.txt"))
    assert outcome.state == "trained" and calls(tmp_path / "calls.txt") == ["x"]
    assert run_state(tmp_path) == ("done", "")


def test_gpu_workers_pin_each_run_to_their_gpu(tmp_path):
    seen = {}

    def runner(task):
        seen["device"] = task.parameters["config"]["device"]
        (Path(task.run_dir) / "metrics.json").write_text('{"mre": 1, "test": {}, "config": {}}')

    outcome = run_task(RunTask("g", str(tmp_path), "g", {"config": {"device": "auto"}}), runner, gpu_count=2)
    assert outcome.state == "trained" and seen["device"] == "cuda:0"  # worker 0 (not on a worker)


def test_cli_dry_run_lists_the_runs_and_bad_input_exits_1(roots, tmp_path, capsys):
    import yaml

    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(small(roots)))
    assert xlm_main(["study", "run", str(path), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "study t: 11 runs (2 backbone, 9 transfer)" in out and out.count("pending") == 11
    assert (tmp_path / "r" / "t" / "study.json").is_file()
    assert xlm_main(["study", "status", str(path), "--results", str(tmp_path / "r"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 11 and {r["state"] for r in rows} == {"pending"}
    assert xlm_main(["study", "run", "nope"]) == 1
    assert "unknown study profile 'nope'" in capsys.readouterr().err
    assert xlm_main(["study", "status", "never-run", "--results", str(tmp_path)]) == 1
    assert "xlm study run never-run" in capsys.readouterr().err


def test_synthetic_data_is_written_once(tmp_path):
    written: list[tuple] = []

    def writer(anatomy, out, n, seed):
        written.append((anatomy, n, seed))
        out.mkdir(parents=True, exist_ok=True)
        (out / "SYNTHETIC.json").write_text(json.dumps({"n": n}))
        (out / "img.txt").write_text(f"{anatomy} {n} {seed}")

    raw = {"name": "s", "data": "synthetic", "synthetic": {"n": 4, "seed": 3}, "seeds": [0],
           "backbones": None, "transfer": {"targets": ["head"], "chains": [["imagenet", "hand", "head"]],
                                         "matched_control": False}}
    runner = FakeRunner(tmp_path / "calls.txt")
    for _ in range(2):
        result = run_study(profile_from_dict(raw), results=tmp_path / "r", runner=runner,
                           phantom_writer=writer, aggregate=False, log=quiet)
    assert written == [("head", 4, 3), ("hand", 4, 3)]
    assert result.plan.runs[0].config["root"] == str((tmp_path / "r" / "s" / "data" / "hand").resolve())
    raw["synthetic"]["n"] = 5
    run_study(profile_from_dict(raw), results=tmp_path / "r", runner=runner, phantom_writer=writer,
              aggregate=False, log=quiet)
    assert written[-2:] == [("head", 5, 3), ("hand", 5, 3)]
    assert len(calls(tmp_path / "calls.txt")) == 4  # new data, new ids


def test_real_data_needs_a_root(tmp_path):
    from xlm_core import XLMError

    raw = {"name": "p", "data": "real", "seeds": [0], "backbones": None,
           "transfer": {"targets": ["head"], "chains": [["imagenet", "head"]]}}
    with pytest.raises(XLMError, match="--data-root"):
        run_study(profile_from_dict(raw), results=tmp_path, runner=FakeRunner(tmp_path / "c"),
                  log=quiet)
    with pytest.raises(XLMError, match="dataset root for head not found"):
        run_study(profile_from_dict(raw), results=tmp_path, data_root=tmp_path / "nowhere",
                  runner=FakeRunner(tmp_path / "c"), log=quiet)


# --------------------------------------------------------------------------- papermill

FAKE_NOTEBOOK = '''# %% tags=["parameters"]
config = {}
run_id = ""
study = ""
profile_note = ""
fail_on = "never"

# %%
import json, os
from pathlib import Path
out, dataset = config["out"], config["dataset"]
if dataset == fail_on:
    raise ValueError("fake notebook failure on " + dataset)
Path(out, "metrics.json").write_text(json.dumps(
    {"config": {"run_id": run_id}, "mre": 1.0, "test": {}, "pid": os.getppid(), "note": profile_note}))
'''


def write_fake_notebooks(folder: Path, fail_on: str = "never") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_evaluate.py").write_text(FAKE_NOTEBOOK.replace('"never"', repr(fail_on)))
    (folder / "transfer.py").write_text(
        '# %% tags=["parameters"]\nresults_dir = ""\nstudy = ""\n\n'
        '# %%\nimport json, pathlib\nd = json.loads(pathlib.Path(results_dir, "study.json").read_text())\n'
        'pathlib.Path(results_dir, "table2_transfer.csv").write_text(str(len(d["runs"])))\n'
    )
    return folder


@pytest.mark.slow
def test_papermill_runs_the_notebook_and_keeps_the_failed_one(roots, tmp_path):
    nbs = write_fake_notebooks(tmp_path / "nbs", fail_on="head")
    raw = grid(roots, backbones=None, transfer={"targets": ["head"], "chains": [["imagenet", "hand", "head"]],
                                                  "matched_control": False})
    result = run_study(profile_from_dict(raw), results=tmp_path / "r", notebooks=nbs, log=quiet)
    report = result.report
    hand, head = result.plan.runs
    assert report.trained == [hand.run_id] and [f["run_id"] for f in report.failed] == [head.run_id]
    executed = json.loads(Path(report.failed[0]["notebook"]).read_text())
    text = json.dumps(executed)
    assert "injected-parameters" in text and head.run_id in text and "fake notebook failure" in text
    assert "ValueError" in report.failed[0]["error"]
    hand_nb = json.loads((result.plan.run_dir(hand.run_id) / "run.ipynb").read_text())
    assert hand.run_id in json.dumps(hand_nb) and executed["metadata"]["kernelspec"]["name"] == "python3"
    assert not list(result.plan.run_dir(hand.run_id).glob(".*.ipynb"))  # no partial left behind
    # aggregation: transfer.py exists and runs, the other five are reported missing
    agg = {a["name"]: a["state"] for a in result.aggregation}
    assert agg["transfer"] == "executed" and agg["backbones"] == "missing"
    assert (tmp_path / "r" / "t" / "table2_transfer.csv").read_text() == "2"
    assert (tmp_path / "r" / "t" / "notebooks" / "transfer.ipynb").is_file()
    assert result.exit_code == 1


@pytest.mark.slow
def test_ci_profile_trains_for_real(tmp_path):
    """The real run notebook and training on the ci profile's settings (two chained runs)."""
    ci = load_profile("ci").settings
    raw = {k: ci[k] for k in ("note", "data", "synthetic", "datasets", "run", "seeds")}
    raw.update(name="ci", backbones=None,
               transfer={**ci["transfer"], "chains": [["imagenet", "hand", "head"]]})
    result = run_study(profile_from_dict(raw), results=tmp_path, aggregate=False, log=print)
    assert result.exit_code == 0, result.report.failed
    head = result.plan.runs[-1]
    metrics = json.loads((result.plan.run_dir(head.run_id) / "metrics.json").read_text())
    assert metrics["dataset"] == "head" and metrics["transfer"] is not None
    assert (result.plan.run_dir(head.run_id) / "run.ipynb").is_file()
    again = run_study(profile_from_dict(raw), results=tmp_path, aggregate=False, log=quiet)
    assert again.report.trained == [] and again.exit_code == 0


def test_prune_lists_then_deletes_run_folders_outside_the_plan_but_never_a_held_one(tmp_path, capsys):
    """Runs of changed parameters stay on disk as orphans; `xlm study prune` lists them,
    `--yes` deletes them, and a folder whose lock a live process holds is kept."""
    import fcntl

    from xlm_core.study.runstate import LOCK_NAME

    runs = tmp_path / "s" / "runs"
    planned = {"run_id": "a" * 16, "kind": "transfer", "dataset": "head", "arch": "unet", "encoder": "vgg19",
               "chain_label": "imagenet", "fold": None, "seed": 0}
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.json").write_text(json.dumps({"study": "s", "runs": [planned]}))
    for name in ("a" * 16, "b" * 16, "c" * 16):
        (runs / name).mkdir(parents=True)
        (runs / name / "checkpoint.pt").write_bytes(b"x")
    (runs / ("c" * 16) / LOCK_NAME).write_text("pid 1 on host: a run")
    with open(runs / ("c" * 16) / LOCK_NAME) as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert xlm_main(["study", "prune", "s", "--results", str(tmp_path)]) == 0
        listed = capsys.readouterr().out
        assert "b" * 16 in listed and "a" * 16 not in listed and "held by" in listed
        assert (runs / ("b" * 16)).is_dir()  # listing deletes nothing
        assert xlm_main(["study", "prune", "s", "--results", str(tmp_path), "--yes"]) == 0
    assert sorted(p.name for p in runs.iterdir()) == ["a" * 16, "c" * 16]


# --------------------------------------------------------------------------- disk and workers


class CheckpointRunner(FakeRunner):
    """A fake run that writes a checkpoint, after checking that its init checkpoint exists."""

    def __call__(self, task: RunTask) -> None:
        init = task.parameters.get("config", {}).get("init")
        if init and not Path(init).is_file():
            raise RuntimeError(f"init checkpoint {init} was deleted before its dependant ran")
        super().__call__(task)
        (Path(task.run_dir) / "checkpoint.pt").write_bytes(b"w" * 1000)


@pytest.mark.parametrize("workers", [1, 2])
def test_needed_checkpoints_keeps_the_first_stages_and_frees_the_rest_after_their_dependants(
        roots, tmp_path, workers):
    raw = small(roots, execution={"workers": workers, "keep_checkpoints": "needed"})
    lines: list[str] = []
    result = run_study(profile_from_dict(raw), results=tmp_path / "r", runner=CheckpointRunner(tmp_path / "c"),
                       aggregate=False, log=lines.append)
    assert result.exit_code == 0 and not result.report.failed
    kept = {r.run_id for r in result.plan.runs if (result.plan.run_dir(r.run_id) / "checkpoint.pt").is_file()}
    first_stages = {r.run_id for r in result.plan.runs if r.kind == "transfer" and not r.depends_on}
    assert kept == first_stages and len(first_stages) == 3  # imagenet>head, >hand, >chest
    assert all(run_done(result.plan.run_dir(r.run_id)) for r in result.plan.runs)  # still done
    progress = [line for line in lines if line.startswith("[")]
    assert progress and all(" | disk " in line for line in progress)
    # --keep-checkpoints (run_study(keep_checkpoints=True)) overrides the profile for new runs
    raw["run"]["epochs"] = 2
    again = run_study(profile_from_dict(raw), results=tmp_path / "r", runner=CheckpointRunner(tmp_path / "c"),
                      aggregate=False, log=quiet, keep_checkpoints=True)
    assert all((again.plan.run_dir(r.run_id) / "checkpoint.pt").is_file() for r in again.plan.runs)


def test_keep_checkpoints_all_is_the_default_and_a_bad_policy_is_refused(roots, tmp_path):
    result = run_study(profile_from_dict(small(roots)), results=tmp_path / "r",
                       runner=CheckpointRunner(tmp_path / "c"), aggregate=False, log=quiet)
    assert all((result.plan.run_dir(r.run_id) / "checkpoint.pt").is_file() for r in result.plan.runs)
    with pytest.raises(XLMError, match="keep_checkpoints"):
        profile_from_dict(small(roots, execution={"keep_checkpoints": "some"}))


def test_auto_workers_follow_the_cores_and_the_memory(roots, monkeypatch):
    from xlm_core.study import resources

    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda _pid: set(range(16)))
    monkeypatch.setattr(resources.os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096,
                                                             "SC_PHYS_PAGES": 128 * 1024**3 // 4096}[name])
    assert resources.auto_workers(1) == 16 and resources.auto_workers(4) == 4
    monkeypatch.setattr(resources.os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096,
                                                             "SC_PHYS_PAGES": 8 * 1024**3 // 4096}[name])
    assert resources.auto_workers(1) == 2  # 8 GB hold two runs of 3 GB
    assert profile_from_dict(small(roots, execution={"workers": "auto"})).settings["execution"]["workers"] == "auto"
