"""A corpus of bad inputs, built at test time from the real samples (nothing binary committed).

Each :class:`BadDataset` is a small copy of one real sample root (``../shared/data/<name>``)
with exactly one defect; ``build_dataset(case, shared, tmp)`` writes it under ``tmp`` and
returns the root. ``file`` is the path (relative to the root) that an error must name and
``words`` the words that must describe the problem.

The files a command other than ``xlm data check`` receives (a non-image, a checkpoint of
another architecture, a pickle that would run code on load) are built by the functions at
the end of the module.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: the files of each sample root the corpus copies (the rest is not needed)
HEAD_FILES = ("RawImage/TrainingData/001.bmp", "AnnotationsByMD/400_senior/001.txt",
              "AnnotationsByMD/400_junior/001.txt")
HAND_IDS = ("3167", "3177")  # two hand images that have a row in all.csv
CHEST_IDS = ("0001", "0002", "0003")


@dataclass(frozen=True)
class BadDataset:
    """One defect in one dataset root: ``break_root(root)`` applies it to a pristine copy."""

    name: str
    dataset: str  # head | hand | chest
    break_root: Callable[[Path], None]
    file: str  # relative to the root ("" for the root itself)
    words: tuple[str, ...]


# --------------------------------------------------------------------------- pristine copies


def copy_sample(dataset: str, shared: Path, dest: Path) -> Path:
    """A small copy of the real sample root ``shared`` of ``dataset`` at ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if dataset == "head":
        for rel in HEAD_FILES:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shared / rel, dest / rel)
    elif dataset == "hand":
        (dest / "jpg").mkdir()
        ids = set(HAND_IDS)
        for image_id in HAND_IDS:
            shutil.copy(shared / "jpg" / f"{image_id}.jpg", dest / "jpg" / f"{image_id}.jpg")
        rows = [r for r in (shared / "all.csv").read_text().splitlines() if r.split(",")[0] in ids]
        assert len(rows) == len(HAND_IDS), "the hand sample's all.csv changed"
        (dest / "all.csv").write_text("\n".join(rows) + "\n")
    elif dataset == "chest":
        (dest / "pngs").mkdir()
        (dest / "labels").mkdir()
        for image_id in CHEST_IDS:
            name = f"CHNCXR_{image_id}_0"
            shutil.copy(shared / "pngs" / f"{name}.png", dest / "pngs" / f"{name}.png")
            shutil.copy(shared / "labels" / f"{name}.txt", dest / "labels" / f"{name}.txt")
    else:
        raise ValueError(dataset)
    return dest


# --------------------------------------------------------------------------- defects


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_lines(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")


def _hand_rows(root: Path) -> list[list[str]]:
    return [r.split(",") for r in (root / "all.csv").read_text().splitlines()]


def _write_hand_rows(root: Path, rows: list[list[str]]) -> None:
    (root / "all.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")


def _hand_field(index: int, value: str) -> Callable[[Path], None]:
    def go(root: Path) -> None:
        rows = _hand_rows(root)
        rows[0][index] = value
        _write_hand_rows(root, rows)
    return go


def _hand_duplicate(root: Path) -> None:
    rows = _hand_rows(root)
    _write_hand_rows(root, rows + [list(rows[0])])


def _hand_header(root: Path) -> None:
    rows = _hand_rows(root)
    n = (len(rows[0]) - 1) // 2
    header = ["id"] + [f"{c}{k}" for k in range(1, n + 1) for c in ("x", "y")]
    _write_hand_rows(root, [header] + rows)


def _head_points(count: int) -> Callable[[Path], None]:
    def go(root: Path) -> None:
        _edit_lines(root / "AnnotationsByMD/400_senior/001.txt", lambda lines: lines[:count] + lines[19:])
    return go


def _head_outside(root: Path) -> None:
    for who in ("senior", "junior"):
        _edit_lines(root / f"AnnotationsByMD/400_{who}/001.txt", lambda lines: ["99999,10"] + lines[1:])


def _chest_line(value: str) -> Callable[[Path], None]:
    def go(root: Path) -> None:
        _edit_lines(root / "labels/CHNCXR_0002_0.txt", lambda lines: [lines[0], value] + lines[2:])
    return go


def _empty_root(root: Path) -> None:
    for child in list(root.iterdir()):
        shutil.rmtree(child) if child.is_dir() else child.unlink()


BAD_DATASETS: tuple[BadDataset, ...] = (
    BadDataset("truncated_bmp", "head", lambda r: truncate(r / HEAD_FILES[0]), HEAD_FILES[0], ("truncated",)),
    BadDataset("truncated_jpg", "hand", lambda r: truncate(r / "jpg/3167.jpg"), "jpg/3167.jpg", ("truncated",)),
    BadDataset("truncated_png", "chest", lambda r: truncate(r / "pngs/CHNCXR_0001_0.png"),
               "pngs/CHNCXR_0001_0.png", ("truncated",)),
    BadDataset("zero_byte_image", "chest", lambda r: (r / "pngs/CHNCXR_0003_0.png").write_bytes(b""),
               "pngs/CHNCXR_0003_0.png", ("empty",)),
    BadDataset("head_18_of_19_points", "head", _head_points(18), "AnnotationsByMD/400_senior/001.txt",
               ("18 landmarks", "expected 19")),
    BadDataset("nan_coordinate", "hand", _hand_field(3, "NaN"), "all.csv", ("id 3167", "NaN")),
    BadDataset("text_coordinate", "chest", _chest_line("left 0.5"), "labels/CHNCXR_0002_0.txt",
               ("non-numeric", "'left'")),
    BadDataset("point_outside_image", "head", _head_outside, HEAD_FILES[0], ("outside",)),
    BadDataset("duplicate_id", "hand", _hand_duplicate, "all.csv", ("duplicate id '3167'",)),
    BadDataset("csv_with_header", "hand", _hand_header, "all.csv", ("row 1", "header")),
    BadDataset("empty_root", "chest", _empty_root, "", ("does not exist",)),
)


def build_dataset(case: BadDataset, shared: Path, tmp: Path) -> Path:
    """Write ``case``'s broken copy of the real sample ``shared`` under ``tmp``; return its root."""
    root = copy_sample(case.dataset, shared, tmp / case.name / case.dataset)
    case.break_root(root)
    return root


# --------------------------------------------------------------------------- files for train / predict / evaluate


def write_non_image(path: Path) -> Path:
    """A text file with an image's extension."""
    path.write_text("id,x,y\nthis is a landmark table, not an image\n")
    return path


class CodeOnLoad:
    """Unpickling this runs ``open(marker, "w")``: a loader that creates ``marker`` ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_code_pickles(folder: Path, marker: Path) -> list[Path]:
    """Two files whose loading would create ``marker``: a raw pickle, and a torch zip checkpoint
    (``{"format": "xlm-checkpoint/1", ..., "model": <payload>}``)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "payload_raw.pt"
    raw.write_bytes(pickle.dumps({"model": CodeOnLoad(marker)}))
    zipped = folder / "payload_zip.pt"
    torch.save({"format": "xlm-checkpoint/1", "arch": "unet", "encoder": "resnet18", "n_landmarks": 6,
                "model": CodeOnLoad(marker)}, zipped)
    assert not marker.exists()
    return [raw, zipped]


def write_tiny_checkpoint(path: Path, arch: str = "unet", encoder: str = "resnet18", n_landmarks: int = 6,
                          label_arch: str | None = None, test_size: tuple[int, int] = (32, 32)) -> Path:
    """A run checkpoint (untrained weights) as :func:`xlm_core.training.train_and_evaluate` writes
    it, without training; ``label_arch`` labels the weights as another architecture."""
    import torch

    from xlm_core.checkpoints import CHECKPOINT_FORMAT
    from xlm_core.models import build_model, input_normalisation

    torch.manual_seed(0)
    model = build_model(arch, encoder, n_landmarks, "none")
    mean, std = input_normalisation(encoder)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "format": CHECKPOINT_FORMAT, "arch": label_arch or arch, "encoder": encoder,
        "encoder_weights": "none", "n_landmarks": n_landmarks,
        "landmark_names": [str(k + 1) for k in range(n_landmarks)],
        "train_size": list(test_size), "test_size": list(test_size),
        "normalisation": {"grey_to_rgb": True, "mean": list(mean), "std": list(std), "input_range": [0.0, 1.0]},
        "dataset": "chest", "loss": "mse", "sigma": 2.0, "data_source": "real", "config": {},
        "model": {k: v.clone() for k, v in model.state_dict().items()}, "epoch": 1, "val_loss": 1.0,
    }, path)
    return path
