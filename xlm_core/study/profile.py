"""Study profiles (``studies/*.yaml``): loading and validation, before any training.

A profile is the single source of truth for every setting of a study. Its schema::

    name: demo                       # results/<name>/ (letters, digits, - _ .)
    note: "demo profile: ..."        # shown on every page the study feeds
    data: synthetic                  # synthetic | real
    synthetic: {n: 24, seed: 0}      # phantoms per anatomy (n: int or {head: int, ...})
    datasets:                        # one entry per dataset a run uses
      head:
        root: null                   # real data (relative to the YAML file), or --data-root DIR/head
        options: {annotator: mean}   # load_dataset options -> RunConfig.extra
        test_size: [64, 52]          # any run setting (below) may be set per dataset
    run:                             # run settings of every run (RunConfig fields)
      encoder_weights: none
      epochs: 30
      ...
    seeds: [0, 1]
    backbones:                       # Table 1: every arch x encoder pair, k-fold CV on one dataset
      dataset: hand
      folds: 2
      archs: [unet, unetplusplus, deeplabv3]
      encoders: [efficientnet-b7, resnext101_32x8d, vgg19]
      pairs: null                    # or an explicit [[arch, encoder], ...]
      seeds: null                    # default: the profile's seeds
      run: {}                        # run settings for these runs only
    transfer:                        # Table 2: ImageNet -> [A -> [B ->]] target
      arch: unetplusplus
      encoder: vgg19
      targets: [head, hand, chest]
      chains: all                    # or [[imagenet, hand, head], ...], each ending with its target
      matched_control: true          # per target, [imagenet, T, T, T]: as many stages (and about
                                     # as many steps) as its longest chain, on its own data only
      scratch_control: false         # per target, [scratch, T] and [scratch, T, T, T]: the same
                                     # stages from random weights (what ImageNet buys)
      seeds: null
      run: {}
      finetune: {}                   # run settings of the stages after the first (they start
                                     # from a trained checkpoint: e.g. fewer epochs, lower lr),
                                     # and per target dataset: {epochs: 6, head: {epochs: 8}}
    ablation:                        # optional: losses x learning rates on one dataset (kind
      dataset: hand                  # "ablation" runs; full training split, scored on test)
      arch: unetplusplus
      encoder: vgg19
      losses: [spatial_ce, mse]
      lrs: [1.0e-3, 1.0e-4]          # every loss x every lr, or per loss: {mse: [1.0e-4], ...}
      seed: 0
      run: {}
    execution:                       # how runs are executed (not part of any result)
      workers: 2                     # parallel runs when --workers is not given (auto: cores, memory)
      threads: 1                     # torch/OpenMP threads per run (null: torch's default)
      keep_checkpoints: all          # or needed: delete a finished run's checkpoint.pt once no
                                     # later run starts from it and no book page loads it

Run settings are merged in this order (later wins): ``run``, ``datasets.<d>``,
``<section>.run`` (and, for transfer stages after the first, ``transfer.finetune``).
``options`` dictionaries are merged key by key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from xlm_core import XLMError
from xlm_core.config import SettingError, check_setting, profile_settings
from xlm_core.registry import LOSS_NAMES as LOSSES

DATASET_NAMES = ("head", "hand", "chest")  # the paper's three (phantoms, `chains: all`)
REAL_SET_NAMES = ("ceph", "spine")  # built-in descriptors of public real sets (data: real only)
INIT_TOKEN = "imagenet"  # the first element of a chain: the profile's encoder_weights
SCRATCH_TOKEN = "scratch"  # or this one: random weights (encoder_weights none), whatever the profile says
START_TOKENS = (INIT_TOKEN, SCRATCH_TOKEN)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# the run settings a profile may set: RunConfig's fields marked so in their metadata (their
# rules, messages and defaults live there: xlm_core.config); encoder_weights may also be given
# per encoder here ({vgg19: PATH, resnext101_32x8d: imagenet, ...}, resolved by the plan)
RUN_SETTING_KEYS = profile_settings()
_WEIGHTS_WHAT = ("'imagenet', 'none', a path to a weights file, or one of these per encoder: "
                 "{vgg19: PATH, resnext101_32x8d: imagenet, ...}")

_TOP_KEYS = {
    "name": "the study name (results/<name>/)",
    "note": "a one-line label shown on every page this study feeds",
    "data": "synthetic | real",
    "synthetic": "{n, seed}: the phantoms written for data: synthetic",
    "datasets": "per-dataset settings: root, options and run settings",
    "custom_datasets": "{name: path of a dataset.yaml}: your own datasets, usable as backbone, "
    "ablation or transfer datasets (relative paths: to the profile's folder)",
    "run": "run settings of every run",
    "seeds": "a list of integer seeds",
    "backbones": "the backbone comparison (Table 1), or null",
    "transfer": "the transfer chains (Table 2), or null",
    "ablation": "losses x learning rates on one dataset (the method chapter), or null",
    "notebooks": "the aggregation notebooks (notebooks/<name>.py) run after the runs, in order "
    "(default: the paper's chapters: datasets, pipeline, ablation, backbones, transfer, sota, beyond)",
    "execution": "{workers, threads, keep_checkpoints}: parallel runs (or auto), torch threads "
    "per run, which finished checkpoints stay (all | needed)",
}
_SYNTH_KEYS = ("n", "seed")
_DATASET_KEYS = ("root", "options") + RUN_SETTING_KEYS
_BACKBONE_KEYS = ("dataset", "folds", "archs", "encoders", "pairs", "seeds", "run")
_TRANSFER_KEYS = ("arch", "encoder", "targets", "chains", "matched_control", "scratch_control", "seeds",
                  "run", "finetune")
_ABLATION_KEYS = ("dataset", "arch", "encoder", "losses", "lrs", "seed", "run")
_EXECUTION_KEYS = ("workers", "threads", "keep_checkpoints")
KEEP_CHECKPOINTS = ("all", "needed")


@dataclass(frozen=True)
class Profile:
    """A validated profile. ``settings``: the normalised YAML content (see module docstring)."""

    name: str
    path: Path | None  # the YAML file, None for an in-memory profile
    settings: dict

    @property
    def note(self) -> str:
        return self.settings["note"]

    @property
    def data(self) -> str:
        return self.settings["data"]

    @property
    def base_dir(self) -> Path:
        """Relative dataset roots are resolved against this folder (the YAML's)."""
        return self.path.parent if self.path is not None else Path.cwd()


# --------------------------------------------------------------------------- locating


def repo_root() -> Path | None:
    """The source checkout holding this package (a folder with studies/ or notebooks/), if any."""
    root = Path(__file__).resolve().parents[2]
    if (root / "studies").is_dir() or (root / "notebooks").is_dir():
        return root
    return None


def builtin_profile_names() -> list[str]:
    """Names accepted as ``xlm study run NAME`` (repo ``studies/`` first, then the package's)."""
    names: set[str] = set()
    root = repo_root()
    if root is not None and (root / "studies").is_dir():
        names.update(p.stem for p in (root / "studies").glob("*.yaml"))
    try:
        names.update(
            Path(str(p)).stem for p in resources.files("xlm_core").joinpath("studies").iterdir()
            if str(p).endswith(".yaml")
        )
    except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
        pass
    return sorted(names)


def resolve_profile_path(spec: str | Path) -> Path:
    """A profile name (``demo``, ``paper``, ``ci``) or a path to a YAML file -> the YAML path.

    Names resolve to the repository's ``studies/<name>.yaml`` when this package runs from a
    checkout (the source of truth), else to the copy shipped in ``xlm_core/studies/``.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or path.is_file() or "/" in text:
        if not path.is_file():
            raise XLMError(f"study profile {text}: no such file")
        return path.resolve()
    root = repo_root()
    if root is not None and (root / "studies" / f"{text}.yaml").is_file():
        return (root / "studies" / f"{text}.yaml").resolve()
    shipped = Path(str(resources.files("xlm_core").joinpath("studies", f"{text}.yaml")))
    if shipped.is_file():
        return shipped
    raise XLMError(
        f"unknown study profile {text!r}; known: {', '.join(builtin_profile_names()) or 'none'}; "
        "or give a path to a .yaml file"
    )


def load_profile(spec: str | Path) -> Profile:
    """Read (``yaml.safe_load``) and validate a profile given by name or path."""
    path = resolve_profile_path(spec)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise XLMError(f"study profile {path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise XLMError(f"study profile {path}: cannot read: {exc.strerror}") from None
    settings = validate_profile(raw, source=str(path), default_name=path.stem)
    return Profile(name=settings["name"], path=path, settings=settings)


def profile_from_dict(raw: dict, source: str = "<profile>") -> Profile:
    """Validate an in-memory profile (tests, notebooks)."""
    settings = validate_profile(raw, source=source, default_name=None)
    return Profile(name=settings["name"], path=None, settings=settings)


# --------------------------------------------------------------------------- validation


class _Checker:
    """Collects the location of every value checked, for messages that name the key."""

    def __init__(self, source: str):
        self.source = source
        self.datasets: tuple[str, ...] = DATASET_NAMES + REAL_SET_NAMES  # + custom_datasets

    def fail(self, key: str, problem: str) -> XLMError:
        return XLMError(f"study profile {self.source}: {key}: {problem}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | dict) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {_kind(value)}")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise self.fail(
                f"{key}.{unknown[0]}" if key else str(unknown[0]),
                f"unknown key; allowed: {', '.join(allowed)}",
            )
        return dict(value)

    def integer(self, value: Any, key: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {value}")
        return int(value)

    def string(self, value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected text, got {_kind(value)}")
        if choices is not None and value not in choices:
            raise self.fail(key, f"{value!r} is not allowed; allowed: {', '.join(choices)}")
        return value

    def string_list(self, value: Any, key: str, choices: tuple[str, ...] | None = None) -> list[str]:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"expected a non-empty list, got {_kind(value)}")
        return [self.string(v, f"{key}[{i}]", choices) for i, v in enumerate(value)]

    def run_setting(self, name: str, value: Any, key: str) -> Any:
        """``value`` of RunConfig field ``name`` checked by the field's own rule
        (:func:`xlm_core.config.check_setting`), JSON form; an error names ``key``."""
        if name == "encoder_weights" and isinstance(value, dict):
            if value and all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
                return dict(value)
            raise self.fail(key, f"expected {_WEIGHTS_WHAT}, got {_kind(value)} {value!r}")
        try:
            return check_setting(name, value)
        except SettingError as exc:
            problem = exc.problem
            if name == "encoder_weights":
                problem = f"expected {_WEIGHTS_WHAT}, got {_kind(value)} {value!r}"
            raise self.fail(key, problem) from None

    def run_settings(self, value: Any, key: str, extra_allowed: tuple[str, ...] = ()) -> dict:
        allowed = extra_allowed + RUN_SETTING_KEYS
        mapping = self.mapping(value, key, allowed)
        return {
            k: (v if k in extra_allowed else self.run_setting(k, v, f"{key}.{k}"))
            for k, v in mapping.items()
        }


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_arch_encoder(check: _Checker, arch: str, encoder: str, key: str) -> None:
    """Unknown architecture / encoder / impossible pair -> XLMError naming ``key``."""
    try:
        from xlm_core.models import check_combination
    except ImportError:  # models not built: fall back to smp's registry
        check_combination = _smp_check
    try:
        check_combination(arch, encoder)
    except XLMError as exc:
        raise check.fail(key, str(exc)) from None


def _smp_check(arch: str, encoder: str) -> None:
    import segmentation_models_pytorch as smp

    archs = sorted(smp.MODEL_ARCHITECTURES_MAPPING)
    if arch not in archs:
        raise XLMError(f"unknown architecture {arch!r}; allowed: {', '.join(archs)}")
    names = smp.encoders.get_encoder_names()
    if encoder not in names and not encoder.startswith("tu-"):
        raise XLMError(f"unknown encoder {encoder!r}; allowed: {', '.join(sorted(names))}")
    if arch == "deeplabv3" and encoder.startswith("vgg"):
        raise XLMError(f"{arch} cannot use the encoder {encoder!r} (no dilated mode)")


def _pair_allowed(arch: str, encoder: str) -> bool:
    try:
        from xlm_core.models import check_combination
    except ImportError:
        check_combination = _smp_check
    try:
        check_combination(arch, encoder)
    except XLMError:
        return False
    return True


def validate_profile(raw: Any, source: str, default_name: str | None) -> dict:
    """Check every key and value of a profile; return its normalised form.

    Raises XLMError naming ``source``, the key and the allowed values on the first problem:
    an unknown key, a wrong type, an unknown dataset / architecture / encoder, an impossible
    arch-encoder pair, or a transfer chain naming a dataset twice.
    """
    check = _Checker(source)
    if not isinstance(raw, dict):
        raise XLMError(f"study profile {source}: expected a mapping at the top, got {_kind(raw)}")
    top = check.mapping(raw, "", tuple(_TOP_KEYS))
    out: dict[str, Any] = {}

    name = top.get("name", default_name)
    if name is None:
        raise check.fail("name", "missing (the study's folder name under results/)")
    name = check.string(name, "name")
    if not NAME_RE.match(name):
        raise check.fail("name", f"{name!r}: use letters, digits, '-', '_' and '.' only")
    out["name"] = name
    out["note"] = check.string(top.get("note", f"study profile {name}"), "note")
    out["data"] = check.string(top.get("data", "real"), "data", ("synthetic", "real"))

    synth = check.mapping(top.get("synthetic"), "synthetic", _SYNTH_KEYS)
    n = synth.get("n", 24)
    if isinstance(n, dict):
        n = check.mapping(n, "synthetic.n", DATASET_NAMES)
        n = {d: check.integer(v, f"synthetic.n.{d}", 2) for d, v in n.items()}
    else:
        n = check.integer(n, "synthetic.n", 2)
    out["synthetic"] = {"n": n, "seed": check.integer(synth.get("seed", 0), "synthetic.seed", 0)}

    custom = top.get("custom_datasets") or {}
    if not isinstance(custom, dict):
        raise check.fail("custom_datasets", f"expected a mapping name: dataset.yaml, got {_kind(custom)}")
    out["custom_datasets"] = {}
    for cname, cpath in custom.items():
        key = f"custom_datasets.{cname}"
        taken = DATASET_NAMES + REAL_SET_NAMES + START_TOKENS
        if not isinstance(cname, str) or not NAME_RE.match(cname) or cname in taken:
            raise check.fail(key, f"a name of letters, digits, '_', '.', '-', not one of {taken}")
        path = check.string(cpath, key)
        if not path.endswith((".yaml", ".yml")):
            raise check.fail(key, f"expected the path of a dataset.yaml, got {path!r}")
        out["custom_datasets"][cname] = path
    check.datasets = DATASET_NAMES + REAL_SET_NAMES + tuple(out["custom_datasets"])

    datasets = check.mapping(top.get("datasets"), "datasets", check.datasets)
    out["datasets"] = {}
    for d in check.datasets:
        entry = check.run_settings(datasets.get(d), f"datasets.{d}", ("root", "options"))
        root = entry.get("root")
        if root is not None:
            entry["root"] = check.string(root, f"datasets.{d}.root")
        options = entry.get("options")
        if options is not None and not isinstance(options, dict):
            raise check.fail(f"datasets.{d}.options", f"expected a mapping, got {_kind(options)}")
        entry["options"] = dict(options or {})
        out["datasets"][d] = entry

    out["run"] = check.run_settings(top.get("run"), "run")
    seeds = top.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        raise check.fail("seeds", f"expected a non-empty list of integers, got {_kind(seeds)}")
    out["seeds"] = [check.integer(s, f"seeds[{i}]", 0) for i, s in enumerate(seeds)]
    if len(set(out["seeds"])) != len(out["seeds"]):
        raise check.fail("seeds", f"a seed is listed twice: {out['seeds']}")

    out["backbones"] = _validate_backbones(check, top.get("backbones"))
    out["transfer"] = _validate_transfer(check, top.get("transfer"))
    out["ablation"] = _validate_ablation(check, top.get("ablation"))
    out["execution"] = _validate_execution(check, top.get("execution"))
    notebooks = top.get("notebooks")
    out["notebooks"] = None if notebooks is None else check.string_list(notebooks, "notebooks")
    for name in out["notebooks"] or []:
        if not NAME_RE.match(name):
            raise check.fail("notebooks", f"{name!r} is not a notebook name (notebooks/<name>.py)")
    if out["backbones"] is None and out["transfer"] is None and out["ablation"] is None:
        raise check.fail("backbones", "backbones, transfer and ablation are all empty: nothing to run")
    if out["data"] == "synthetic":
        real = sorted(_used(out) & set(REAL_SET_NAMES))
        if real:
            raise check.fail("data", f"synthetic: there are phantoms of {DATASET_NAMES} only, and the "
                             f"profile trains on {real} (real sets: use data: real and --data-root DIR)")
    return out


def _used(settings: dict) -> set[str]:
    """The datasets some run of the validated ``settings`` trains on."""
    used = {settings[k]["dataset"] for k in ("backbones", "ablation") if settings.get(k)}
    for chain in (settings["transfer"] or {}).get("chains", []):
        used.update(chain[1:])
    return used


def _section_seeds(check: _Checker, value: Any, key: str) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise check.fail(key, f"expected a non-empty list of integers, got {_kind(value)}")
    return [check.integer(s, f"{key}[{i}]", 0) for i, s in enumerate(value)]


def _validate_backbones(check: _Checker, value: Any) -> dict | None:
    if value is None:
        return None
    sec = check.mapping(value, "backbones", _BACKBONE_KEYS)
    out: dict[str, Any] = {
        "dataset": check.string(sec.get("dataset", "hand"), "backbones.dataset", check.datasets),
        "folds": check.integer(sec.get("folds", 5), "backbones.folds", 2),
        "seeds": _section_seeds(check, sec.get("seeds"), "backbones.seeds"),
        "run": check.run_settings(sec.get("run"), "backbones.run"),
    }
    pairs = sec.get("pairs")
    if pairs is not None:
        if not isinstance(pairs, list) or not pairs:
            raise check.fail("backbones.pairs", f"expected a list of [arch, encoder], got {_kind(pairs)}")
        out_pairs = []
        for i, pair in enumerate(pairs):
            key = f"backbones.pairs[{i}]"
            if not isinstance(pair, list) or len(pair) != 2:
                raise check.fail(key, f"expected [arch, encoder], got {pair!r}")
            arch, enc = (check.string(v, key) for v in pair)
            _check_arch_encoder(check, arch, enc, key)
            out_pairs.append([arch, enc])
        if "archs" in sec or "encoders" in sec:
            raise check.fail("backbones.pairs", "give either pairs or archs/encoders, not both")
    else:
        archs = check.string_list(sec.get("archs", ["unet", "unetplusplus", "deeplabv3"]), "backbones.archs")
        encs = check.string_list(
            sec.get("encoders", ["efficientnet-b7", "resnext101_32x8d", "vgg19"]), "backbones.encoders"
        )
        for i, a in enumerate(archs):
            _check_arch_encoder(check, a, encs[0], f"backbones.archs[{i}]")
        for i, e in enumerate(encs):
            _check_arch_encoder(check, archs[0], e, f"backbones.encoders[{i}]")
        # impossible pairs (DeepLabV3 + VGG: no dilated mode) are left out, as in the paper
        out_pairs = [[a, e] for a in archs for e in encs if _pair_allowed(a, e)]
    if len({tuple(p) for p in out_pairs}) != len(out_pairs):
        raise check.fail("backbones.pairs", "a pair is listed twice")
    out["pairs"] = out_pairs
    return out


def _section_model(check: _Checker, sec: dict, section: str) -> tuple[str, str]:
    """``<section>.arch`` / ``<section>.encoder`` (default the paper's U-Net++ / VGG19), checked as a pair."""
    arch = check.string(sec.get("arch", "unetplusplus"), f"{section}.arch")
    enc = check.string(sec.get("encoder", "vgg19"), f"{section}.encoder")
    _check_arch_encoder(check, arch, enc, f"{section}.arch/encoder")
    return arch, enc


def _validate_transfer(check: _Checker, value: Any) -> dict | None:
    if value is None:
        return None
    sec = check.mapping(value, "transfer", _TRANSFER_KEYS)
    arch, enc = _section_model(check, sec, "transfer")
    targets = check.string_list(sec.get("targets", list(DATASET_NAMES)), "transfer.targets", check.datasets)
    chains_raw = sec.get("chains", "all")
    if chains_raw == "all":
        own = [t for t in targets if t not in DATASET_NAMES]
        if own:
            raise check.fail("transfer.chains", f"'all' is defined for {DATASET_NAMES}; list the chains "
                             f"of {own[0]!r} explicitly, e.g. [[imagenet, hand, {own[0]}]]")
        chains = [c for t in targets for c in all_chains(t)]
    else:
        if not isinstance(chains_raw, list) or not chains_raw:
            raise check.fail("transfer.chains", f"expected 'all' or a list of chains, got {chains_raw!r}")
        chains = []
        for i, chain in enumerate(chains_raw):
            key = f"transfer.chains[{i}]"
            chain = check.string_list(chain, key, START_TOKENS + check.datasets)
            if chain[0] not in START_TOKENS or any(t in START_TOKENS for t in chain[1:]):
                raise check.fail(key, f"a chain starts with {INIT_TOKEN!r} or {SCRATCH_TOKEN!r} (and names "
                                 f"a start once): {chain}")
            if len(chain) < 2:
                raise check.fail(key, f"a chain ends with its target dataset: {chain}")
            seen = [d for d in chain[1:]]
            twice = sorted({d for d in seen if seen.count(d) > 1})
            if twice and not is_control_chain(chain):
                raise check.fail(key, f"names the dataset {twice[0]!r} twice (only a matched control "
                                 f"repeats its target alone, e.g. [imagenet, head, head, head]): {chain}")
            if chain[-1] not in targets:
                raise check.fail(key, f"ends with {chain[-1]!r}, not one of transfer.targets {targets}")
            chains.append(chain)
    matched = sec.get("matched_control", True)
    if not isinstance(matched, bool):
        raise check.fail("transfer.matched_control", f"expected true or false, got {matched!r}")
    if matched:
        chains = chains + [c for c in matched_controls(chains) if c not in chains]
    scratch = sec.get("scratch_control", False)
    if not isinstance(scratch, bool):
        raise check.fail("transfer.scratch_control", f"expected true or false, got {scratch!r}")
    if scratch:
        chains = chains + [c for c in scratch_controls(chains) if c not in chains]
    if len({tuple(c) for c in chains}) != len(chains):
        raise check.fail("transfer.chains", "a chain is listed twice")
    return {
        "arch": arch,
        "encoder": enc,
        "targets": targets,
        "chains": chains,
        "matched_control": matched,
        "scratch_control": scratch,
        "seeds": _section_seeds(check, sec.get("seeds"), "transfer.seeds"),
        "run": check.run_settings(sec.get("run"), "transfer.run"),
        "finetune": _validate_finetune(check, sec.get("finetune"), tuple(check.datasets)),
    }


def _validate_finetune(check: _Checker, value: Any, dataset_names: tuple[str, ...]) -> dict:
    """``transfer.finetune``: run settings of every stage after the first, and per target
    dataset of such a stage (``{epochs: 6, head: {epochs: 8}}``: the dataset's entry wins)."""
    settings = check.run_settings(value, "transfer.finetune", extra_allowed=dataset_names)
    for name in dataset_names:
        if name in settings:
            settings[name] = check.run_settings(settings[name], f"transfer.finetune.{name}")
    return settings


def _validate_ablation(check: _Checker, value: Any) -> dict | None:
    """``ablation``: losses x learning rates on one dataset, one seed (kind "ablation" runs).

    ``lrs``: a list (every loss with every lr) or a mapping loss -> list. Normalised with
    ``lrs`` as that mapping and ``points``: ``[[loss, lr], ...]`` in order.
    """
    if value is None:
        return None
    sec = check.mapping(value, "ablation", _ABLATION_KEYS)
    arch, enc = _section_model(check, sec, "ablation")
    losses = check.string_list(sec.get("losses", list(LOSSES)), "ablation.losses", LOSSES)
    if len(set(losses)) != len(losses):
        raise check.fail("ablation.losses", f"a loss is listed twice: {losses}")
    lrs_raw = sec.get("lrs", [1.0e-3, 1.0e-4])

    def lr_list(value: Any, key: str) -> list[float]:
        if not isinstance(value, list) or not value:
            raise check.fail(key, f"expected a non-empty list of positive numbers, got {_kind(value)}")
        out = [check.run_setting("lr", v, f"{key}[{i}]") for i, v in enumerate(value)]
        if len(set(out)) != len(out):
            raise check.fail(key, f"a learning rate is listed twice: {out}")
        return out

    if isinstance(lrs_raw, dict):  # per loss: {spatial_ce: [1.0e-3, 1.0e-4], mse: [1.0e-3]}
        lrs_map = check.mapping(lrs_raw, "ablation.lrs", tuple(losses))
        missing = [loss for loss in losses if loss not in lrs_map]
        if missing:
            raise check.fail(f"ablation.lrs.{missing[0]}", "missing: give the learning rates of every loss")
        lrs = {loss: lr_list(lrs_map[loss], f"ablation.lrs.{loss}") for loss in losses}
    else:
        grid = lr_list(lrs_raw, "ablation.lrs")
        lrs = {loss: list(grid) for loss in losses}
    run = check.run_settings(sec.get("run"), "ablation.run")
    for key in ("loss", "lr"):
        if key in run:
            raise check.fail(f"ablation.run.{key}", "set by ablation.losses / ablation.lrs")
    return {
        "dataset": check.string(sec.get("dataset", "hand"), "ablation.dataset", check.datasets),
        "arch": arch,
        "encoder": enc,
        "losses": losses,
        "lrs": lrs,  # {loss: [lr, ...]}
        "points": [[loss, lr] for loss in losses for lr in lrs[loss]],
        "seed": check.integer(sec.get("seed", 0), "ablation.seed", 0),
        "run": run,
    }


def _validate_execution(check: _Checker, value: Any) -> dict:
    """``execution``: ``workers`` (parallel runs, default 1; ``auto``: from the cores and the
    memory, :func:`xlm_core.study.execute.auto_workers`), ``threads`` (per run, or null) and
    ``keep_checkpoints`` (``all``, the default, or ``needed``: a finished run's checkpoint is
    deleted once no run of the plan still needs it and no book page loads it)."""
    sec = check.mapping(value, "execution", _EXECUTION_KEYS)
    threads = sec.get("threads")
    workers = sec.get("workers", 1)
    keep = sec.get("keep_checkpoints", "all")
    if keep not in KEEP_CHECKPOINTS:
        raise XLMError(f"execution.keep_checkpoints must be one of {', '.join(KEEP_CHECKPOINTS)}, got {keep!r}")
    return {
        "workers": "auto" if workers == "auto" else check.integer(workers, "execution.workers", 1),
        "threads": None if threads is None else check.integer(threads, "execution.threads", 1),
        "keep_checkpoints": keep,
    }


def is_control_chain(chain: list[str] | tuple[str, ...]) -> bool:
    """A matched control: ``[imagenet|scratch, T, T, ...]``, two or more stages all on the target."""
    stages = list(chain[1:])
    return len(stages) >= 2 and len(set(stages)) == 1


def matched_controls(chains: list[list[str]]) -> list[list[str]]:
    """For every target whose longest chain has k >= 2 stages, ``[imagenet] + [target] * k``.

    The control trains on the target alone for as many stages as that chain, each stage with
    the settings a chain's stage on the target gets (``transfer.finetune`` after the first), so
    it spends about as many optimiser steps: it separates "other x-rays first" from "longer
    training with warm restarts". Its first stage is the single-stage run itself (shared).
    """
    return [[INIT_TOKEN, *[t] * k] for t, k in _longest(chains).items() if k >= 2]


def scratch_controls(chains: list[list[str]]) -> list[list[str]]:
    """For every target: ``[scratch, target]`` and, where its longest chain has k >= 2 stages,
    ``[scratch] + [target] * k``: the single stage and the matched control again, from random
    weights with the same settings and steps. Against them the ImageNet rows say what ImageNet
    buys, at one stage and at the length of the longest chain.
    """
    out = []
    for target, k in _longest(chains).items():
        out.append([SCRATCH_TOKEN, target])
        if k >= 2:
            out.append([SCRATCH_TOKEN, *[target] * k])
    return out


def _longest(chains: list[list[str]]) -> dict[str, int]:
    """Per target, the stages of its longest chain that is not a control (ImageNet-started)."""
    longest: dict[str, int] = {}
    for chain in chains:
        if chain[0] == INIT_TOKEN and not is_control_chain(chain):
            longest[chain[-1]] = max(longest.get(chain[-1], 0), len(chain) - 1)
    return longest


def all_chains(target: str) -> list[list[str]]:
    """The paper's five chains ending at ``target``: I, I-A, I-B, I-A-B, I-B-A (A, B the others)."""
    a, b = [d for d in DATASET_NAMES if d != target]
    return [
        [INIT_TOKEN, target],
        [INIT_TOKEN, a, target],
        [INIT_TOKEN, b, target],
        [INIT_TOKEN, a, b, target],
        [INIT_TOKEN, b, a, target],
    ]
