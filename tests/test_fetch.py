"""``xlm data fetch``: the public real sets cloned at a pinned commit, tested against a local git
repository built here from the real samples (``../shared/data``) and served over ``file://``.

No code host is reachable from the test machines, so the pinned GitHub commits cannot be fetched
here; every test names the local repository with ``--source`` and its commit with ``--commit``
(the descriptors' own pins are checked for form only). The repository holds a subset of both
sets (enough for the loaders and ``xlm data check``) beside files the sparse checkout must leave
out.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from xlm_core import XLMError
from xlm_core.cli import main
from xlm_core.datasets import fetch
from xlm_core.datasets.descriptor import builtin_descriptor, parse_descriptor
from xlm_core.study.plan import prepare_data
from xlm_core.study.profile import load_profile

CEPH, SPINE = "hamedan_university_dataset", "boostnet_labeldata"
CEPH_IDS = ("001", "002", "003", "071", "072", "073")  # 002: a broken reader's file
SPINE_N = 8  # images of each side of the spine split (series < 240 train, >= 240 test)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[str, str]:
    """``(file:// url, commit)`` of a git repository laid out as the public ones: both sets'
    folders (a subset of their images, all their annotation files) and files outside them."""
    ceph, spine = SHARED_DATA / CEPH, SHARED_DATA / SPINE
    if not (ceph.is_dir() and spine.is_dir()):
        pytest.skip(f"real samples not found at {SHARED_DATA} (set XLM_SHARED_DATA)")
    repo = tmp_path_factory.mktemp("public") / "repo"
    for i in CEPH_IDS:
        _copy(ceph / "pictures" / f"{i}.tif", repo / CEPH / "pictures" / f"{i}.tif")
        for reader in ("annotated by  Dr.mollabashi", "annotated by Dr.farhadifar"):
            _copy(ceph / reader / f"{i}.json", repo / CEPH / reader / f"{i}.json")
    images = sorted((spine / "data" / "training").glob("*.jpg"))
    test_ids = set(builtin_descriptor("spine").split_test_ids)  # series 240 and later
    train = [p for p in images if p.stem not in test_ids]
    test = [p for p in images if p.stem in test_ids]
    for image in train[:SPINE_N] + test[:SPINE_N]:
        _copy(image, repo / SPINE / "data" / "training" / image.name)
    shutil.copytree(spine / "labels", repo / SPINE / "labels")
    _copy(Path(__file__), repo / "train.py")  # code beside the data: not fetched
    (repo / "other").mkdir()
    (repo / "other" / "README").write_text("not a dataset\n")
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "config", "uploadpack.allowFilter", "true")  # serve the blob filter, as GitHub does
    _git(repo, "config", "core.compression", "0")  # images: already compressed
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "data")
    return repo.as_uri(), _git(repo, "rev-parse", "HEAD")


def _fetch(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["data", "fetch", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def _no_git_path(tmp_path: Path, monkeypatch) -> None:
    empty = tmp_path / "no-git-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_fetch_puts_only_the_folder_at_the_commit_and_a_second_call_fetches_nothing(
        source, real_sets_root, tmp_path, capsys, monkeypatch) -> None:
    url, commit = source
    root = tmp_path / "data"
    status, out, err = _fetch(capsys, "ceph", str(root), "--source", url, "--commit", commit)
    assert status == 0, err
    assert sorted(p.name for p in root.iterdir()) == [CEPH]  # no code, no clone, no temporary folder
    dest = root / CEPH
    expected = {f"pictures/{i}.tif" for i in CEPH_IDS}
    assert expected <= _files(dest) and "other/README" not in _files(dest)
    assert (dest / "pictures" / "071.tif").read_bytes() == (real_sets_root / CEPH / "pictures" / "071.tif").read_bytes()
    assert json.loads((dest / fetch.RECORD).read_text()) == {"dataset": "ceph", "url": url, "commit": commit,
                                                              "folder": CEPH}
    assert "terms: the repository states no licence" in out
    assert f"commit {commit} verified" in out
    # xlm data check's summary, on the fetched folder: 6 images, 002 refused
    assert f"xlm data check: ceph at {dest}: {len(CEPH_IDS)} image files found, 5 usable" in out

    # a second call finds the set and fetches nothing: it needs no git at all
    stamp = (dest / "pictures" / "001.tif").stat().st_mtime_ns
    _no_git_path(tmp_path, monkeypatch)
    status, out, err = _fetch(capsys, "ceph", str(root), "--source", url, "--commit", commit)
    assert status == 0, err
    assert "already: nothing fetched" in out and "5 usable" in out
    assert (dest / "pictures" / "001.tif").stat().st_mtime_ns == stamp


def test_real_fetches_both_sets_into_the_layout_of_data_root(source, tmp_path, capsys, monkeypatch) -> None:
    url, commit = source
    pins = {}

    def local_pin(name: str, source_url=None, source_commit=None) -> fetch.Pin:
        pins[name] = fetch.Pin(name, url, commit, builtin_descriptor(name).source_folder)
        return pins[name]

    monkeypatch.setattr(fetch, "pin", local_pin)  # the public pins, pointed at the local copy
    status, out, err = _fetch(capsys, "real", str(tmp_path / "data"))
    assert status == 0, err
    assert sorted(pins) == ["ceph", "spine"]
    assert "the images are SpineWeb's" in out and "states no licence" in out
    assert f"spine at {tmp_path / 'data' / SPINE}: {2 * SPINE_N} image files found" in out
    roots = prepare_data(load_profile("real"), tmp_path / "results", data_root=tmp_path / "data")
    assert roots == {"ceph": (tmp_path / "data" / CEPH).resolve(), "spine": (tmp_path / "data" / SPINE).resolve()}


def test_a_commit_the_source_lacks_is_refused_and_leaves_nothing(source, tmp_path, capsys) -> None:
    url, _ = source
    root = tmp_path / "data"
    wrong = "0123456789abcdef0123456789abcdef01234567"
    status, out, err = _fetch(capsys, "ceph", str(root), "--source", url, "--commit", wrong)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"xlm: error: {url} has no commit {wrong}")
    assert list(root.iterdir()) == []  # neither the set nor the temporary clone
    # without --commit the descriptor's pin is asked for: the local copy lacks it too
    status, _, err = _fetch(capsys, "spine", str(root), "--source", url)
    assert status == 2 and builtin_descriptor("spine").repository[1] in err
    status, _, err = _fetch(capsys, "ceph", str(root), "--source", url, "--commit", "da6777e")
    assert status == 2 and "full commit id" in err


def test_no_git_and_no_network_each_get_one_line_and_status_2(source, tmp_path, capsys, monkeypatch) -> None:
    url, commit = source
    status, _, err = _fetch(capsys, "ceph", str(tmp_path / "a"), "--source", "https://localhost:1/x.git",
                            "--commit", commit)
    assert status == 2 and err.count("\n") == 1 and err.startswith("xlm: error: cannot reach https://localhost:1/x.git")
    _no_git_path(tmp_path, monkeypatch)
    status, out, err = _fetch(capsys, "ceph", str(tmp_path / "b"), "--source", url, "--commit", commit)
    assert status == 2 and err == "xlm: error: git is not installed (not found on PATH): install git " \
        "(e.g. `apt-get install git`), or put the set there by hand\n"
    assert not (tmp_path / "b").exists()


def test_a_commit_without_the_folder_is_refused(tmp_path, capsys) -> None:
    repo = tmp_path / "repo"
    _git(tmp_path, "init", "-q", str(repo))
    (repo / "README.md").write_text("no data here\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "code only")
    commit = _git(repo, "rev-parse", "HEAD")
    status, _, err = _fetch(capsys, "ceph", str(tmp_path / "data"), "--source", repo.as_uri(), "--commit", commit)
    assert status == 2 and f"has no folder {CEPH}/ at its top" in err
    assert list((tmp_path / "data").iterdir()) == []


def test_an_interrupted_fetch_leaves_nothing_that_passes_for_the_set(source, tmp_path, capsys, monkeypatch) -> None:
    url, commit = source
    root = tmp_path / "data"

    def killed(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(fetch.os, "rename", killed)  # stopped after the clone, before the folder is placed
        assert main(["data", "fetch", "ceph", str(root), "--source", url, "--commit", commit]) == 130
    assert list(root.iterdir()) == []
    # a fetch killed outright leaves its hidden temporary folder: not the set, removed next time
    leftover = root / f".{CEPH}.fetching-x" / CEPH / "pictures"
    leftover.mkdir(parents=True)
    with pytest.raises(XLMError, match=CEPH):
        prepare_data(load_profile("real"), tmp_path / "results", data_root=root)
    status, out, err = _fetch(capsys, "ceph", str(root), "--source", url, "--commit", commit)
    assert status == 0, err
    assert "left by an interrupted fetch" in out
    assert sorted(p.name for p in root.iterdir()) == [CEPH]


def test_a_folder_of_another_commit_is_refused_and_one_put_by_hand_is_kept(
        source, real_sets_root, tmp_path, capsys) -> None:
    url, commit = source
    root = tmp_path / "data"
    assert _fetch(capsys, "ceph", str(root), "--source", url, "--commit", commit)[0] == 0
    other = "f" * 40
    status, _, err = _fetch(capsys, "ceph", str(root), "--source", url, "--commit", other)
    assert status == 2 and f"holds commit {commit}" in err and f"not {other}" in err
    by_hand = tmp_path / "by-hand"
    (by_hand / CEPH / "pictures").mkdir(parents=True)
    _copy(real_sets_root / CEPH / "pictures" / "071.tif", by_hand / CEPH / "pictures" / "071.tif")
    status, out, _ = _fetch(capsys, "ceph", str(by_hand), "--source", url, "--commit", commit)
    assert "was not fetched by xlm data fetch: kept as it is" in out
    assert _files(by_hand / CEPH) == {"pictures/071.tif"}
    assert status == 1  # the check's summary: no usable image, so no split to train on


def test_the_descriptors_pin_repository_commit_and_folder_in_one_place() -> None:
    assert fetch.fetchable() == ("ceph", "spine")
    for name, folder in (("ceph", CEPH), ("spine", SPINE)):
        p = fetch.pin(name)
        assert (p.url, p.commit) == builtin_descriptor(name).repository and p.folder == folder
        assert p.url.startswith("https://github.com/") and len(p.commit) == 40
    assert fetch.pin("ceph", "file:///mirror", "A" * 40) == fetch.Pin("ceph", "file:///mirror", "a" * 40, CEPH)
    with pytest.raises(XLMError, match="no public repository for dataset 'head'"):
        fetch.pin("head")


def test_a_descriptors_repository_is_checked_and_stays_out_of_its_digest() -> None:
    spec = {"name": "mine", "images": "img/*.png", "landmarks": 3, "source_folder": "mine",
            "annotations": {"format": "landmark_csv", "sources": ["points.csv"]}}
    plain = parse_descriptor(spec, "mine.yaml", None)
    pinned = parse_descriptor({**spec, "repository": {"url": "https://example.org/r.git", "commit": "ab" * 20}},
                              "mine.yaml", None)
    assert plain.repository is None and pinned.repository == ("https://example.org/r.git", "ab" * 20)
    assert plain.digest == pinned.digest  # where the set is published does not change its runs
    for bad, key in (({"url": "u", "commit": "abc"}, "repository.commit"), ({"commit": "ab" * 20}, "repository.url"),
                     ({"url": "u", "commit": "ab" * 20, "branch": "main"}, "repository.branch")):
        with pytest.raises(XLMError, match=f"mine.yaml: .*{key}"):
            parse_descriptor({**spec, "repository": bad}, "mine.yaml", None)
    no_folder = {k: v for k, v in spec.items() if k != "source_folder"}
    with pytest.raises(XLMError, match="repository: needs source_folder"):
        parse_descriptor({**no_folder, "repository": {"url": "u", "commit": "ab" * 20}}, "mine.yaml", None)


def test_git_runs_without_a_prompt(monkeypatch) -> None:
    """A private or missing repository on a code host asks for a password; fetch must fail instead."""
    seen = {}

    def run(cmd, **kwargs):
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", run)
    fetch._git(["--version"])
    assert seen["GIT_TERMINAL_PROMPT"] == "0"
