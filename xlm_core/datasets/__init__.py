"""Dataset loaders: one call, ``load_dataset(name, root, **options) -> LandmarkSet``.

Names: ``"head"`` (ISBI 2015), ``"hand"`` (Digital Hand Atlas + Payer's CSV), ``"chest"``
(Shenzhen + Zhu's labels), and the generic ``"labelme"`` and ``"landmark_csv"``; or the
path of a ``dataset.yaml`` (``format: labelme|landmark_csv|head|hand|chest``, optional
``root`` relative to the YAML file, and any loader options).

Options (all loaders): ``train`` (count or fraction of the sorted ids for the training
part; default the paper's split, scaled to the number of usable images when the root
holds fewer or more than the paper's), ``verify_images`` (decode every image now, which
finds truncated files; default reads headers only), ``strict`` (raise :class:`XLMError`
listing every fatal problem instead of skipping those images). Per dataset:
``annotator="mean"|"senior"|"junior"`` (head), ``image_format="auto"|"jpg"|"mha"`` and
``wrist_pair=(1, 5)`` 0-based or ``"payer"``/``"zhu"`` (hand), ``exclusion=None|"zhu"``
(chest); see :mod:`xlm_core.datasets.generic` for the generic formats.

Every loader returns float64 ``(x, y)`` landmarks in original-image pixels and records
every problem it met in ``LandmarkSet.problems`` (see :mod:`xlm_core.datasets.check`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path

from xlm_core import XLMError
from xlm_core.datasets.base import LandmarkSet, Problem, Sample, Scale
from xlm_core.datasets.cache import PreprocessCache
from xlm_core.datasets.check import CheckReport, check_dataset
from xlm_core.datasets.chest import load_chest
from xlm_core.datasets.generic import load_labelme, load_landmark_csv
from xlm_core.datasets.hand import load_hand
from xlm_core.datasets.head import load_head
from xlm_core.datasets.splits import carve_validation, kfold_split, ordered_split, sorted_ids

DATASET_NAMES = ("head", "hand", "chest")
GENERIC_NAMES = ("labelme", "landmark_csv")
LOADERS: dict[str, Callable] = {
    "head": load_head,
    "hand": load_hand,
    "chest": load_chest,
    "labelme": load_labelme,
    "landmark_csv": load_landmark_csv,
}

__all__ = [
    "DATASET_NAMES",
    "GENERIC_NAMES",
    "CheckReport",
    "LandmarkSet",
    "PreprocessCache",
    "Problem",
    "Sample",
    "Scale",
    "carve_validation",
    "check_dataset",
    "dataset_fingerprint",
    "kfold_split",
    "load_dataset",
    "loader_options",
]


def loader_options(name: str) -> list[str]:
    """The options ``load_dataset(name, ...)`` accepts."""
    loader = _loader(name)
    own = [p for p in inspect.signature(loader).parameters if p not in ("root", "log")]
    return sorted(own + ["train", "strict"])


def _loader(name: str) -> Callable:
    if name not in LOADERS:
        raise XLMError(f"unknown dataset {name!r}; choose one of {sorted(LOADERS)} or a dataset.yaml path")
    return LOADERS[name]


def _from_yaml(path: Path, root, options: dict) -> tuple[str, Path, dict]:
    import yaml

    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise XLMError(f"{path}: cannot read dataset description ({exc})") from None
    if not isinstance(spec, dict) or "format" not in spec:
        raise XLMError(f"{path}: a dataset.yaml needs a 'format' key ({sorted(LOADERS)})")
    spec = dict(spec)
    name = str(spec.pop("format"))
    spec_root = spec.pop("root", None)
    if root is None or str(root) == "":
        if spec_root is None:
            raise XLMError(f"{path}: no dataset root given (argument or 'root' key)")
        root = path.parent / spec_root
    return name, Path(root), {**spec, **options}


def load_dataset(name: str, root: str | os.PathLike | None, **options) -> LandmarkSet:
    """Load a dataset root into a :class:`LandmarkSet` (see the module docstring for options).

    Raises :class:`XLMError` for a wrong root (naming the expected path), an unknown
    option, or (``strict=True``) any problem that makes an image unusable.
    """
    if str(name).endswith((".yaml", ".yml")) and Path(name).is_file():
        name, root, options = _from_yaml(Path(name), root, options)
    loader = _loader(name)
    if root is None:
        raise XLMError(f"dataset {name!r}: no root folder given")
    train = options.pop("train", None)
    strict = bool(options.pop("strict", False))
    allowed = set(loader_options(name)) - {"train", "strict"}
    unknown = set(options) - allowed
    if unknown:
        raise XLMError(f"dataset {name!r}: unknown option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    samples, log, settings = loader(root, **options)

    if strict and any(p.fatal for p in log.problems):
        listed = "\n".join(f"  {p.file}: {p.problem}" for p in log.problems if p.fatal)
        raise XLMError(f"dataset {name!r} at {root} has problems that make images unusable:\n{listed}")
    samples = _natural(samples)
    paper_train, paper_total = settings["paper_split"]
    train_ids, test_ids = ordered_split([s.id for s in samples], train, paper_train, paper_total)
    return LandmarkSet(
        name=name,
        root=Path(root),
        samples=samples,
        landmark_names=settings["landmark_names"],
        scale=settings["scale"],
        thresholds=tuple(settings["thresholds"]),
        train_size=tuple(settings["train_size"]),
        test_size=tuple(settings["test_size"]),
        train_ids=train_ids,
        test_ids=test_ids,
        problems=list(log.problems),
        synthetic=bool(settings["synthetic"]),
        options={**settings["options"], "train": train},
    )


def _natural(samples: list[Sample]) -> list[Sample]:
    order = sorted_ids([s.id for s in samples])
    index = {s.id: s for s in samples}
    return [index[i] for i in order]


def dataset_fingerprint(lset: LandmarkSet, cache: PreprocessCache | None = None) -> str:
    """Content hash of a loaded set: image bytes, ground-truth landmarks, options.

    Changes when an image, an annotation, the annotator choice or the split changes; does
    not change when the root folder moves.
    """
    cache = cache or PreprocessCache()
    digest = hashlib.sha256()
    digest.update(cache.fingerprint([s.image for s in lset.samples]).encode())
    for sample in lset.samples:
        digest.update(sample.id.encode() + b"\0")
        digest.update(sample.landmarks.astype("<f8").tobytes())
    meta = {"name": lset.name, "options": lset.options, "train": lset.train_ids, "test": lset.test_ids}
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
