"""Train/test splits, k-fold cross-validation and the early-stopping set.

All functions are deterministic: the same ids (in any order), the same arguments and the
same seed give the same lists. Ids are compared in natural order (``"9" < "10"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from xlm_core import XLMError


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``"img9" < "img10"``.

    Args:
        text: an id.

    Returns:
        A tuple to compare.
    """
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts)


def sorted_ids(ids: Iterable[str]) -> list[str]:
    """Ids in natural order.

    Args:
        ids: the ids.

    Returns:
        A new sorted list.
    """
    return sorted(ids, key=natural_key)


def resolve_train_count(
    n_images: int,
    train: float | None = None,
    paper_train: int | None = None,
    paper_total: int | None = None,
) -> int:
    """How many of ``n_images`` (sorted) go to the training part.

    - ``train`` an int: that count; a float in (0, 1): that fraction (rounded);
    - else, when the dataset has exactly ``paper_total`` images: ``paper_train``;
    - else the paper's proportion ``paper_train / paper_total`` of ``n_images`` (so a small
      synthetic demo keeps the paper's ratio), or 80 % when there is no paper split.

    With two or more images both parts keep at least one image.

    Args:
        n_images: number of usable images.
        train: a count, a fraction in (0, 1), or None (the paper's split).
        paper_train: the paper's training count, or None.
        paper_total: the paper's image count, or None.

    Returns:
        The training count, in ``0..n_images``.

    Raises:
        XLMError: for a boolean, a count outside ``0..n_images`` or a fraction outside (0, 1).
    """
    if n_images <= 0:
        return 0
    if train is not None:
        if isinstance(train, bool):
            raise XLMError(f"train split must be a count or a fraction, got {train!r}")
        if isinstance(train, (int, np.integer)):
            count = int(train)
            if count < 0 or count > n_images:
                raise XLMError(f"train count {count} is outside 0..{n_images} (images available)")
            return count
        fraction = float(train)
        if not 0.0 < fraction < 1.0:
            if fraction.is_integer():  # "150" parsed from YAML as 150.0
                return resolve_train_count(n_images, int(fraction))
            raise XLMError(f"train fraction must lie in (0, 1), got {train!r}")
        count = round(fraction * n_images)
    elif paper_train is not None and paper_total is not None and n_images == paper_total:
        return paper_train
    elif paper_train is not None and paper_total:
        count = round(n_images * paper_train / paper_total)
    else:
        count = round(0.8 * n_images)
    if n_images >= 2:
        count = min(max(count, 1), n_images - 1)
    else:
        count = n_images
    return count


def ordered_split(
    ids: Iterable[str],
    train: float | None = None,
    paper_train: int | None = None,
    paper_total: int | None = None,
) -> tuple[list[str], list[str]]:
    """The paper's kind of split: the first ids (natural order) train, the rest test.

    Args:
        ids: the image ids.
        train: a count, a fraction in (0, 1), or None (:func:`resolve_train_count`).
        paper_train: the paper's training count, or None.
        paper_total: the paper's image count, or None.

    Returns:
        ``(train_ids, test_ids)`` in natural order.

    Raises:
        XLMError: as :func:`resolve_train_count`.
    """
    ordered = sorted_ids(ids)
    count = resolve_train_count(len(ordered), train, paper_train, paper_total)
    return ordered[:count], ordered[count:]


def _permuted(ids: Sequence[str], seed: int) -> list[str]:
    ordered = sorted_ids(ids)
    if len(set(ordered)) != len(ordered):
        raise XLMError("ids for a split must be unique")
    order = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in order]


def _check_fold(folds: int, fold: int) -> None:
    if folds < 2:
        raise XLMError(f"k-fold needs at least 2 folds, got {folds}")
    if not 0 <= fold < folds:
        raise XLMError(f"fold must lie in 0..{folds - 1}, got {fold}")


def kfold_split(
    ids: Sequence[str], folds: int, fold: int, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Training and held-out ids of one fold of a k-fold split.

    The ids are shuffled once with ``seed`` and cut into ``folds`` near-equal parts; the
    held-out parts of all folds are disjoint and together cover every id.

    Args:
        ids: the (training) image ids, unique.
        folds: number of folds (>= 2).
        fold: the fold, 0-based.
        seed: the shuffle's seed.

    Returns:
        ``(train_ids, heldout_ids)``, both in natural id order.

    Raises:
        XLMError: for fewer than 2 folds, a fold out of range, fewer ids than folds, or
            repeated ids.
    """
    _check_fold(folds, fold)
    if len(ids) < folds:
        raise XLMError(f"{folds}-fold split needs at least {folds} images, got {len(ids)}")
    shuffled = _permuted(ids, seed)
    parts = np.array_split(np.arange(len(shuffled)), folds)
    heldout = {shuffled[i] for i in parts[fold]}
    train = [i for i in shuffled if i not in heldout]
    return sorted_ids(train), sorted_ids(heldout)


def grouped_kfold_split(
    ids: Sequence[str], groups: dict[str, str], folds: int, fold: int, seed: int = 0
) -> tuple[list[str], list[str]]:
    """One fold of a k-fold split that keeps each group (a patient's images) in one fold.

    The groups are shuffled once with ``seed`` (from natural order) and dealt, largest share
    first, to the fold holding the fewest images so far (ties: the lowest fold), so the folds
    differ by at most one group's size. With one id a group the fold sizes equal
    :func:`kfold_split`'s (the assignment differs).

    Args:
        ids: every id to split, unique.
        groups: ``{id: group}`` for every id.
        folds: number of folds (>= 2).
        fold: the fold, 0-based.
        seed: the shuffle's seed.

    Returns:
        ``(train_ids, heldout_ids)``, both in natural id order.

    Raises:
        XLMError: as :func:`kfold_split`, for an id without a group, or fewer groups than folds.
    """
    _check_fold(folds, fold)
    missing = [i for i in ids if i not in groups]
    if missing:
        raise XLMError(f"no group for id(s) {missing[:3]}")
    members: dict[str, list[str]] = {}
    for image_id in sorted_ids(ids):
        members.setdefault(groups[image_id], []).append(image_id)
    if len(members) < folds:
        raise XLMError(f"{folds}-fold split needs at least {folds} groups (patients), got {len(members)}")
    order = _permuted(list(members), seed)
    order.sort(key=lambda g: -len(members[g]))  # stable: the shuffle orders groups of one size
    sizes = [0] * folds
    heldout: list[str] = []
    for group in order:
        k = sizes.index(min(sizes))
        sizes[k] += len(members[group])
        if k == fold:
            heldout.extend(members[group])
    held = set(heldout)
    return sorted_ids(i for i in ids if i not in held), sorted_ids(heldout)


def carve_validation(
    ids: Sequence[str], fraction: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """A random ``fraction`` of ``ids`` held out for early stopping.

    The validation part is non-empty whenever there are at least two ids and ``fraction`` > 0,
    and never takes every id; ``fraction`` 0 holds nothing out (training then monitors its own
    images).

    Args:
        ids: the training ids, unique.
        fraction: in [0, 1).
        seed: the shuffle's seed.

    Returns:
        ``(fit_ids, val_ids)``, both in natural id order.

    Raises:
        XLMError: for a fraction outside [0, 1) or repeated ids.
    """
    if not 0.0 <= fraction < 1.0:
        raise XLMError(f"validation fraction must lie in [0, 1), got {fraction}")
    shuffled = _permuted(ids, seed)
    n = len(shuffled)
    if n < 2 or fraction == 0.0:
        return sorted_ids(shuffled), []
    n_val = min(max(round(fraction * n), 1), n - 1)
    return sorted_ids(shuffled[n_val:]), sorted_ids(shuffled[:n_val])
