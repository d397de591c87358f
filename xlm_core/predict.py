"""Landmarks for new images from a run's checkpoint (``xlm predict``).

The checkpoint describes itself (architecture, encoder, landmark names, test size, loss), so
nothing but the images is needed. Each image (any size; bmp, png, jpg, tif, mha, DICOM, ...
through :func:`xlm_core.imageio.read_image`) is resized to the checkpoint's test size, the
heatmaps are decoded sub-pixel with the training loss's decoder and mapped back to the
original pixels (:func:`xlm_core.geometry.from_grid`).

Inputs: image files and folders (a folder: the image files directly in it, sorted). Every
readable image is predicted; the others (missing, not an image, truncated) are listed in
``landmarks.json`` under ``unreadable`` with their reasons, and ``xlm predict`` exits
non-zero after writing the rest. With no readable image at all, nothing is written.

Outputs in ``out_dir``: ``landmarks.csv`` (``image_id,landmark,x,y``, 1-based landmarks,
original pixels), ``landmarks.json`` (the same with image sizes and landmark names) and one
overlay ``<image_id>_landmarks.png`` per image, its marks and numbers scaled to the image
size; with a ground-truth CSV (``--gt``, the same ``image_id,landmark,x,y`` form) the overlay
shows the ground truth (green crosses) beside each prediction (red circles), joined by a
line. Everything is produced in a staging folder first and moved in at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xlm_core import XLMError

if TYPE_CHECKING:
    import torch

CSV_NAME = "landmarks.csv"
JSON_NAME = "landmarks.json"
OVERLAY_SUFFIX = "_landmarks.png"


def unique_ids(paths: Sequence[Path]) -> list[str]:
    """Image ids from file names (``a/7.png`` -> ``7``); repeated stems get ``_2``, ``_3``...

    Args:
        paths: the image files.

    Returns:
        One id per path, in order.
    """
    seen: dict[str, int] = {}
    ids = []
    for path in paths:
        name = path.name
        for ext in (".nii.gz",):
            if name.lower().endswith(ext):
                name = name[: -len(ext)]
                break
        else:
            name = path.stem
        seen[name] = seen.get(name, 0) + 1
        ids.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return ids


def overlay_scale(height: int, width: int) -> tuple[float, int]:
    """Marker radius and label font size (pixels) legible on an image of ``height`` x ``width``.

    Both grow with the shorter side (about 1/120 and 1/40 of it), with floors that keep a
    tiny image readable (radius 2, font 10 px).

    Args:
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        ``(radius, font_size)``.
    """
    short = max(1, min(int(height), int(width)))
    return max(2.0, short / 120.0), max(10, round(short / 40.0))


def draw_overlay(image: np.ndarray, landmarks_xy: np.ndarray, path: Path,
                 truth_xy: np.ndarray | None = None) -> None:
    """Save ``image`` with numbered (1-based) landmarks as PNG; labels legible at any size.

    Args:
        image: ``(H, W)`` grey values in [0, 1].
        landmarks_xy: ``(L, 2)`` predicted (x, y), red circles with yellow numbers.
        path: the PNG to write.
        truth_xy: ``(L, 2)`` ground-truth (x, y) drawn beside them (green crosses, a line to
            each prediction), or ``None``.
    """
    from PIL import Image, ImageDraw, ImageFont

    grey = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    canvas = Image.fromarray(grey, mode="L").convert("RGB")
    draw = ImageDraw.Draw(canvas)
    h, w = grey.shape
    radius, font_size = overlay_scale(h, w)
    line = max(1, round(radius / 3))
    font = ImageFont.load_default(size=font_size)
    outline = max(1, font_size // 10)
    if truth_xy is not None:
        for (px, py), (tx, ty) in zip(np.asarray(landmarks_xy, float), np.asarray(truth_xy, float)):
            draw.line((px, py, tx, ty), fill=(255, 255, 255), width=line)
            draw.line((tx - radius, ty - radius, tx + radius, ty + radius), fill=(40, 220, 40), width=line)
            draw.line((tx - radius, ty + radius, tx + radius, ty - radius), fill=(40, 220, 40), width=line)
    for k, (x, y) in enumerate(np.asarray(landmarks_xy, dtype=np.float64)):
        box = (x - radius, y - radius, x + radius, y + radius)
        draw.ellipse(box, outline=(255, 40, 40), width=line)
        draw.text((x + radius + 1, y - radius - 1), str(k + 1), fill=(255, 220, 0), font=font,
                  stroke_width=outline, stroke_fill=(0, 0, 0))
    if truth_xy is not None:
        draw.text((outline + 2, outline + 2), "red: predicted, green: ground truth", fill=(255, 255, 255),
                  font=font, stroke_width=outline, stroke_fill=(0, 0, 0))
    canvas.save(path, format="PNG")


def expand_inputs(items: Sequence[str | os.PathLike]) -> list[Path]:
    """Image paths from files and folders (a folder: its image files, not recursive, sorted).

    Args:
        items: files or folders as given on the command line.

    Returns:
        The paths in order (a missing file stays in the list, to be reported unreadable).

    Raises:
        XLMError: a folder that holds no image file, or no input at all.
    """
    from xlm_core.imageio import is_image_file

    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if p.is_file() and is_image_file(p)), key=str)
            if not found:
                raise XLMError(f"{path}: folder holds no image file (bmp, png, jpg, tif, mha, dcm, ...)")
            paths.extend(found)
        else:
            paths.append(path)
    if not paths:
        raise XLMError("no images given to predict")
    return paths


def predict_image(model: torch.nn.Module, image: np.ndarray, grid_hw: tuple[int, int], loss_name: str,
                  sigma: float, device: torch.device) -> np.ndarray:
    """Landmarks of one image, decoded sub-pixel and mapped back to its pixels.

    Args:
        model: the checkpoint's network (eval mode).
        image: ``(H, W)`` float grey values in [0, 1].
        grid_hw: the checkpoint's test size (H, W) the image is resized to.
        loss_name: the training loss (chooses the decoder).
        sigma: the heatmap sigma in grid pixels.
        device: where the model runs.

    Returns:
        ``(L, 2)`` (x, y) in the pixels of ``image``.
    """
    import torch  # imported here: `xlm --help` and the argument parser do not need torch

    from xlm_core.evaluation import model_logits
    from xlm_core.geometry import from_grid
    from xlm_core.imageio import resize_image
    from xlm_core.losses import decode_for_loss

    grid = resize_image(image, grid_hw)
    with torch.no_grad():
        logits = model_logits(model, torch.tensor(grid, dtype=torch.float32)[None, None], device)
        grid_xy = decode_for_loss(loss_name, logits, sigma)[0].float().cpu().numpy().astype(np.float64)
    return np.asarray(from_grid(grid_xy, image.shape, grid_hw), dtype=np.float64)


def predict(checkpoint: str | os.PathLike, images: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
            device: str = "auto", gt: str | os.PathLike | None = None) -> dict:
    """Predict landmarks for every readable image of ``images`` with ``checkpoint``.

    Args:
        checkpoint: a run's ``checkpoint.pt``.
        images: image files and folders (see :func:`expand_inputs`).
        out_dir: where ``landmarks.csv``, ``landmarks.json`` and the overlays go.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        gt: a ground-truth CSV (``image_id,landmark,x,y``) drawn on the overlays, or ``None``.

    Returns:
        The landmarks.json content; ``unreadable`` lists ``{"file", "reason"}`` for each
        image that could not be read (the others are written).

    Raises:
        XLMError: naming the file, for a bad checkpoint or ground-truth CSV, or when no image
            is readable; then nothing is written to ``out_dir``.
    """
    from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint, resolve_device
    from xlm_core.imageio import read_image
    from xlm_core.landmark_csv import read_landmark_csv, write_landmark_csv

    paths = expand_inputs(images)
    ckpt_path = Path(checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    names = list(ckpt.get("landmark_names") or [str(i + 1) for i in range(int(ckpt["n_landmarks"]))])
    truth = read_landmark_csv(gt) if gt is not None else None
    if truth is not None:
        wrong = {k: v.shape[0] for k, v in truth.items() if v.shape[0] != len(names)}
        if wrong:
            key, count = next(iter(wrong.items()))
            raise XLMError(f"{gt}: image {key!r} has {count} landmarks, the checkpoint predicts {len(names)}")
    loaded: list[tuple[str, Path, np.ndarray]] = []
    unreadable: list[dict] = []
    for image_id, path in zip(unique_ids(paths), paths):
        try:
            loaded.append((image_id, path, read_image(path)))
        except XLMError as exc:
            unreadable.append({"file": str(path), "reason": str(exc).removeprefix(f"{path}: ")})
    if not loaded:
        listed = "; ".join(f"{u['file']}: {u['reason']}" for u in unreadable)
        raise XLMError(f"no readable image to predict ({listed})")
    dev = resolve_device(device)
    model = model_from_checkpoint(ckpt, ckpt_path).to(dev)
    grid_hw = (int(ckpt["test_size"][0]), int(ckpt["test_size"][1]))

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        results: dict[str, np.ndarray] = {}
        entries = []
        without_truth = []
        for image_id, path, image in loaded:
            xy = predict_image(model, image, grid_hw, str(ckpt["loss"]), float(ckpt["sigma"]), dev)
            results[image_id] = xy
            truth_xy = None if truth is None else truth.get(image_id)
            if truth is not None and truth_xy is None:
                without_truth.append(image_id)
            draw_overlay(image, xy, stage / f"{image_id}{OVERLAY_SUFFIX}", truth_xy)
            entries.append({
                "image_id": image_id,
                "file": str(path),
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "landmarks": [{"landmark": k + 1, "name": names[k], "x": float(x), "y": float(y)}
                              for k, (x, y) in enumerate(xy)],
                "overlay": f"{image_id}{OVERLAY_SUFFIX}",
                "ground_truth_drawn": truth_xy is not None,
            })
        write_landmark_csv(stage / CSV_NAME, results)
        summary = {
            "checkpoint": str(ckpt_path),
            "arch": ckpt["arch"],
            "encoder": ckpt["encoder"],
            "dataset": ckpt.get("dataset"),
            "landmark_names": names,
            "grid_hw": list(grid_hw),
            "coordinates": "(x, y) in original-image pixels, pixel centres at integers",
            "images": entries,
            "unreadable": unreadable,
            "ground_truth": None if gt is None else str(gt),
            "without_ground_truth": without_truth,
        }
        (stage / JSON_NAME).write_text(json.dumps(summary, indent=2) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(stage.iterdir()):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return summary


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``xlm predict`` (``cli/train.py`` registers the command with them).

    Args:
        parser: the ``predict`` sub-parser.
    """
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a run's checkpoint.pt")
    parser.add_argument("images", metavar="IMAGE", nargs="+",
                        help="image files or folders (a folder: the image files directly in it)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--gt", metavar="GT.csv",
                        help="ground truth (image_id,landmark,x,y) drawn beside the predictions")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where to run the model (default: auto, CUDA when present)")
    parser.set_defaults(func=predict_command)


def predict_command(args: argparse.Namespace) -> int:
    """Run ``xlm predict``: print what was written and every unreadable image.

    Args:
        args: the parsed arguments of :func:`add_predict_arguments`.

    Returns:
        0 when every image was predicted, 1 when some could not be read.
    """
    import sys

    summary = predict(args.checkpoint, args.images, args.out, device=args.device, gt=getattr(args, "gt", None))
    print(f"{len(summary['images'])} image(s): landmarks.csv, landmarks.json and overlays in {args.out}")
    if summary["without_ground_truth"]:
        print(f"no ground truth in {args.gt} for: {', '.join(summary['without_ground_truth'])}")
    for item in summary["unreadable"]:
        print(f"xlm: error: {item['file']}: {item['reason']} (not predicted)", file=sys.stderr)
    if summary["unreadable"]:
        print(f"xlm: error: {len(summary['unreadable'])} of "
              f"{len(summary['unreadable']) + len(summary['images'])} images unreadable", file=sys.stderr)
        return 1
    return 0
