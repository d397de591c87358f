"""Bad input, through the command line: a clear error naming the file and the problem, exit
status 1, no traceback, and nothing written (no run files, no cache entries, no predictions).

The corpus (tests/bad_inputs.py) is built at test time from the real samples in
../shared/data: truncated BMP/JPG/PNG, a zero-byte image, 18 of 19 points, NaN and text in
coordinates, a point outside the image, a duplicate id, all.csv with a header row, an empty
root, a checkpoint of another architecture, and pickles that
would run code on load (their payload creates a marker file; the tests check it never ran).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from bad_inputs import (
    BAD_DATASETS,
    BadDataset,
    build_dataset,
    copy_sample,
    truncate,
    write_code_pickles,
    write_tiny_checkpoint,
)

from xlm_core.cli import main


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes (what "nothing written" compares)."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("XLM_CACHE", str(path))
    monkeypatch.setenv("XLM_PROGRESS", "0")
    return path


def _shared(request, dataset: str) -> Path:
    return request.getfixturevalue(f"{dataset}_root")


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# --------------------------------------------------------------------------- xlm data check


@pytest.mark.parametrize("case", BAD_DATASETS, ids=[c.name for c in BAD_DATASETS])
def test_data_check_names_the_file_and_the_problem(case: BadDataset, request, tmp_path, cache, capsys):
    root = build_dataset(case, _shared(request, case.dataset), tmp_path)
    before = _tree(root)
    code, text = _run(["data", "check", case.dataset, str(root)], capsys)
    assert code == 1, text
    assert "Traceback" not in text
    assert (case.file or str(root)) in text, text
    line = next((ln for ln in text.splitlines() if (case.file or str(root)) in ln), "")
    for word in case.words:
        assert word in line, f"{word!r} not in {line!r}"
    assert _tree(root) == before  # checking writes nothing into the dataset...
    assert _tree(cache) == {}  # ...and nothing into the preprocessing cache


def test_pristine_copies_check_clean(request, tmp_path, cache, capsys):
    """The corpus's starting points are fine: each failure above is the defect's doing."""
    for dataset in ("hand", "chest"):
        root = copy_sample(dataset, _shared(request, dataset), tmp_path / dataset)
        code, text = _run(["data", "check", dataset, str(root)], capsys)
        assert code == 0, text
        assert " 0 unusable" in text, text
    # one head image: usable, but no split can have a test part (`xlm train` would fail)
    root = copy_sample("head", _shared(request, "head"), tmp_path / "head")
    code, text = _run(["data", "check", "head", str(root)], capsys)
    assert code == 1 and " 0 unusable" in text and "ERROR split: no test images" in text, text


# --------------------------------------------------------------------------- train / predict / evaluate


@pytest.fixture
def world(request, tmp_path) -> dict:
    """A 3-image chest root, a run checkpoint, one of another architecture, two code pickles."""
    chest = copy_sample("chest", _shared(request, "chest"), tmp_path / "data" / "chest")
    marker = tmp_path / "PAYLOAD_RAN"
    raw, zipped = write_code_pickles(tmp_path / "pickles", marker)
    return {
        "tmp": tmp_path,
        "chest": chest,
        "image": chest / "pngs" / "CHNCXR_0001_0.png",
        "checkpoint": write_tiny_checkpoint(tmp_path / "ckpt" / "checkpoint.pt"),
        "other_arch": write_tiny_checkpoint(tmp_path / "other_arch.pt", label_arch="unetplusplus"),
        "pickle_raw": raw,
        "pickle_zip": zipped,
        "marker": marker,
        "out": tmp_path / "out",
    }


TRAIN = ["--arch", "unet", "--encoder", "resnet18", "--epochs", "1", "--train-size", "64", "64",
         "--test-size", "64", "64", "--device", "cpu", "--option", "train=2"]


def _train(w: dict, *extra: str, root: Path | None = None) -> list[str]:
    return ["train", "--dataset", "chest", "--root", str(root or w["chest"]), "--out", str(w["out"]),
            *TRAIN, *extra]


def _run_dir_with(w: dict, name: str, source: Path) -> Path:
    w["out"].mkdir(parents=True, exist_ok=True)
    (w["out"] / name).write_bytes(source.read_bytes())
    return w["out"]


def _truncated_checkpoint(w: dict) -> Path:
    _run_dir_with(w, "checkpoint.pt", w["checkpoint"])
    truncate(w["out"] / "checkpoint.pt", 0.4)
    return w["out"]


def _truncated_training_images(w: dict) -> list[str]:
    for image_id in ("0001", "0002"):  # the two training images (train=2)
        truncate(w["chest"] / "pngs" / f"CHNCXR_{image_id}_0.png", 0.6)
    return _train(w)


def _empty_root(w: dict) -> list[str]:
    (w["tmp"] / "empty").mkdir()
    return _train(w, root=w["tmp"] / "empty")


#: name -> (argv builder, a name the error must contain, words it must contain)
CLI_CASES = {
    # a non-image among good images: tests/test_cli_predict.py (the good ones are predicted)
    "predict_checkpoint_of_another_architecture": (
        lambda w: ["predict", str(w["other_arch"]), str(w["image"]), "--out", str(w["out"])],
        "other_arch.pt", ("do not fit unetplusplus/resnet18",)),
    "predict_truncated_checkpoint": (
        lambda w: ["predict", str(_truncated_checkpoint(w) / "checkpoint.pt"), str(w["image"]),
                   "--out", str(w["tmp"] / "pred")],
        "checkpoint.pt", ("truncated",)),
    "predict_code_pickle_raw": (
        lambda w: ["predict", str(w["pickle_raw"]), str(w["image"]), "--out", str(w["out"])],
        "payload_raw.pt", ("refused", "run code")),
    "predict_code_pickle_zip": (
        lambda w: ["predict", str(w["pickle_zip"]), str(w["image"]), "--out", str(w["out"])],
        "payload_zip.pt", ("refused", "run code")),
    "train_init_code_pickle": (
        lambda w: _train(w, "--init", str(w["pickle_zip"])), "payload_zip.pt", ("refused",)),
    "train_encoder_weights_code_pickle": (
        lambda w: _train(w, "--encoder-weights", str(w["pickle_raw"])), "payload_raw.pt", ("refused",)),
    "train_resume_from_code_pickle": (
        lambda w: [*_train(w)] if _run_dir_with(w, "last.pt", w["pickle_zip"]) else [],
        "last.pt", ("refused",)),
    "train_init_checkpoint_of_another_architecture": (
        lambda w: _train(w, "--init", str(w["other_arch"]), "--arch", "unetplusplus"),
        "other_arch.pt", ("transfer would load only",)),
    "train_empty_root": (_empty_root, "empty", ("does not exist",)),
    "train_truncated_images": (_truncated_training_images, "CHNCXR_000", ("truncated",)),
    "evaluate_truncated_checkpoint": (
        lambda w: ["evaluate", str(_truncated_checkpoint(w))], "checkpoint.pt", ("truncated",)),
    "evaluate_code_pickle": (
        lambda w: ["evaluate", str(_run_dir_with(w, "checkpoint.pt", w["pickle_zip"]))],
        "checkpoint.pt", ("refused", "run code")),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_refuses_bad_input_and_writes_nothing(name, world, cache, capsys):
    build, file_word, words = CLI_CASES[name]
    argv = build(world)
    out_before = _tree(world["out"])
    data_before = _tree(world["tmp"] / "data")
    code, text = _run(argv, capsys)
    error = [ln for ln in text.splitlines() if ln.startswith("xlm: error:")]
    assert code == 1, text
    assert "Traceback" not in text and len(error) == 1, text
    assert file_word in error[0], error[0]
    for word in words:
        assert word in error[0], error[0]
    assert not world["marker"].exists(), "the pickle's payload ran"
    assert _tree(world["out"]) == out_before, "the command wrote into its output folder"
    assert not (world["tmp"] / "pred").exists()
    assert not [p for p in world["tmp"].iterdir() if "staging" in p.name or p.name.endswith(".tmp")]
    assert _tree(world["tmp"] / "data") == data_before
    assert _tree(cache) == {}, "a bad input left preprocessing-cache entries"
