"""``xlm data fetch``: a public real set, cloned with git at its pinned commit, into a data root.

The built-in descriptors of the sets published in a git repository (``ceph``, ``spine``) name
the repository, the commit and the folder (``repository: {url, commit}`` and
``source_folder``); :func:`fetch_dataset` reads them there, so they live in one place. It
fetches that one commit (``--depth 1``), trees only (``--filter=blob:none``: blobs on demand),
checks out only the folder (sparse checkout), verifies the commit, and puts the folder into the
data root under its published name, the layout ``--data-root`` and ``xlm data check`` read.

Nothing half-fetched passes for a set: the clone is made in a hidden temporary folder inside
the data root, and only a complete, verified folder is renamed into place, with a record
(:data:`RECORD`: repository, commit) inside it. A second call finds the record and fetches
nothing; a folder put there by hand (no record) is left as it is. No git, an unreachable
repository, a commit it does not hold or a folder the commit lacks each raise
:class:`FetchError` (the command line's exit status 2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xlm_core import XLMError

#: the record a fetched folder holds (hidden: no loader's glob reads it)
RECORD = ".xlm-fetch.json"
#: every built-in set the real profile reads, fetched by ``xlm data fetch real DIR``
ALL_NAME = "real"


class FetchError(XLMError):
    """git is missing, the repository unreachable, or the commit or folder not in it."""


@dataclass(frozen=True)
class Pin:
    """Where a set is published: ``folder`` of ``url`` at ``commit``.

    Attributes:
        name: the built-in dataset.
        url: the git repository.
        commit: the full commit id.
        folder: the repository's top-level folder holding the set (the descriptor's
            ``source_folder``; the data root holds it under the same name).
    """

    name: str
    url: str
    commit: str
    folder: str


def fetchable() -> tuple[str, ...]:
    """The built-in datasets whose descriptor names a repository (``ceph``, ``spine``)."""
    from xlm_core.datasets.descriptor import BUILTIN_NAMES, builtin_descriptor

    return tuple(n for n in BUILTIN_NAMES if builtin_descriptor(n).repository is not None)


def pin(name: str, url: str | None = None, commit: str | None = None) -> Pin:
    """The descriptor's repository, commit and folder for ``name``, or another source's.

    Args:
        name: a dataset of :func:`fetchable`.
        url: another source of the same repository (a mirror, a local clone); None: the
            descriptor's.
        commit: another commit (the full id); None: the descriptor's.

    Returns:
        The :class:`Pin`.

    Raises:
        FetchError: for a dataset without a repository, or a commit that is not a full id.
    """
    from xlm_core.datasets.descriptor import builtin_descriptor

    if name not in fetchable():
        raise FetchError(f"no public repository for dataset {name!r}; xlm data fetch takes "
                       f"{list(fetchable())} or {ALL_NAME!r} (all of them)")
    desc = builtin_descriptor(name)
    default_url, default_commit = desc.repository
    commit = (commit or default_commit).strip().lower()
    if len(commit) not in (40, 64) or any(c not in "0123456789abcdef" for c in commit):
        raise FetchError(f"--commit must be a full commit id (40 hex digits), got {commit!r}")
    return Pin(name, url or default_url, commit, desc.source_folder)


def _git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run git without prompting (a private or missing repository fails instead of asking)."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="", SSH_ASKPASS="")
    try:
        return subprocess.run(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FetchError("git is not installed (not found on PATH): install git (e.g. "
                         "`apt-get install git`), or put the set there by hand") from None


def _why(proc: subprocess.CompletedProcess) -> str:
    """git's own reason, in one line: its last ``fatal:`` line, else its last line."""
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith("fatal:")]
    return (fatal or lines or [f"exit status {proc.returncode}"])[-1]


def read_record(folder: Path) -> dict | None:
    """The fetch record inside ``folder`` (None when it has none, or an unreadable one)."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _clone(p: Pin, work: Path) -> Path:
    """``p.folder`` of ``p.url`` at ``p.commit``, checked out in ``work``; its path there."""
    if _git(["init", "-q", str(work)]).returncode != 0:
        raise FetchError(f"{work}: git init failed")
    # the repository answers at all (tells an unreachable source from a missing commit)
    reach = _git(["ls-remote", "--quiet", p.url, "HEAD"], cwd=work)
    if reach.returncode != 0:
        raise FetchError(f"cannot reach {p.url} (no network, or no repository there): {_why(reach)}")
    got = _git(["fetch", "--quiet", "--depth", "1", "--filter=blob:none", p.url, p.commit], cwd=work)
    if got.returncode != 0:
        raise FetchError(f"{p.url} has no commit {p.commit} (or will not serve it): {_why(got)}")
    head = _git(["rev-parse", "FETCH_HEAD^{commit}"], cwd=work)
    if head.returncode != 0 or head.stdout.strip() != p.commit:
        raise FetchError(f"{p.url}: fetched commit {head.stdout.strip() or '?'}, not {p.commit}")
    for step in (["sparse-checkout", "set", "--no-cone", f"/{p.folder}/"],
                 ["checkout", "-q", "--detach", p.commit]):
        done = _git(step, cwd=work)
        if done.returncode != 0:
            raise FetchError(f"{p.url} at {p.commit}: checkout of {p.folder}/ failed: {_why(done)}")
    head = _git(["rev-parse", "HEAD"], cwd=work)
    if head.stdout.strip() != p.commit:
        raise FetchError(f"{p.url}: checked out {head.stdout.strip() or '?'}, not {p.commit}")
    folder = work / p.folder
    if not folder.is_dir():
        raise FetchError(f"{p.url} at {p.commit} has no folder {p.folder}/ at its top")
    return folder


def fetch_dataset(p: Pin, data_root: str | os.PathLike, say=print) -> tuple[Path, bool]:
    """Put ``p.folder`` of ``p.url`` at ``p.commit`` into ``data_root``, unless it is there.

    Args:
        p: what to fetch (:func:`pin`).
        data_root: the data root; ``data_root/p.folder`` is the set.
        say: prints one progress line.

    Returns:
        ``(data_root/p.folder, fetched)``; ``fetched`` is False when the folder was there.

    Raises:
        FetchError: no git, the source unreachable, the commit or the folder not in it, or a
            folder fetched at another commit.
    """
    root = Path(data_root)
    dest = root / p.folder
    if dest.exists():
        record = read_record(dest)
        if record is None:
            say(f"{p.name}: {dest} is there and was not fetched by xlm data fetch: kept as it is")
            return dest, False
        if record.get("commit") != p.commit:
            raise FetchError(f"{dest} holds commit {record.get('commit')} of {record.get('url')}, not "
                             f"{p.commit}: remove the folder to fetch {p.commit}")
        say(f"{p.name}: {dest} holds {p.folder}/ at commit {p.commit[:12]} already: nothing fetched")
        return dest, False
    _git(["--version"])  # no git: say so before anything is written
    root.mkdir(parents=True, exist_ok=True)
    prefix = f".{p.folder}.fetching-"
    for stale in root.glob(f"{prefix}*"):  # left by an interrupted fetch (killed, power cut)
        say(f"{p.name}: removing {stale}, left by an interrupted fetch")
        shutil.rmtree(stale, ignore_errors=True)
    say(f"{p.name}: fetching {p.folder}/ of {p.url} at commit {p.commit[:12]} (git: one commit, "
        "that folder only, blobs on demand)")
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        folder = _clone(p, work)
        n_files = sum(1 for f in folder.rglob("*") if f.is_file())
        record = {"dataset": p.name, "url": p.url, "commit": p.commit, "folder": p.folder}
        (folder / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        os.rename(folder, dest)  # complete and verified: only now under its published name
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"{p.name}: {dest}: {n_files} files, commit {p.commit} verified")
    return dest, True
