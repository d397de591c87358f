"""Landmarks for new images from a run's checkpoint (``xlm predict``).

The checkpoint describes itself (architecture, encoder, landmark names, test size, loss), so
nothing but the images is needed. Each image (any size; bmp, png, jpg, tif, mha, DICOM, ...
through :func:`xlm_core.imageio.read_image`) is resized to the checkpoint's test size, the
heatmaps are decoded sub-pixel with the training loss's decoder and mapped back to the
original pixels (:func:`xlm_core.geometry.from_grid`).

Outputs in ``out_dir``: ``landmarks.csv`` (``image_id,landmark,x,y``, 1-based landmarks,
original pixels), ``landmarks.json`` (the same with image sizes and landmark names) and one
overlay ``<image_id>_landmarks.png`` per image. Everything is produced in a staging folder
first and moved in only when every image succeeded: a bad input leaves ``out_dir`` as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from xlm_core import XLMError

CSV_NAME = "landmarks.csv"
JSON_NAME = "landmarks.json"
OVERLAY_SUFFIX = "_landmarks.png"


def unique_ids(paths: Sequence[Path]) -> list[str]:
    """Image ids from file names (``a/7.png`` -> ``7``); repeated stems get ``_2``, ``_3``..."""
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


def draw_overlay(image: np.ndarray, landmarks_xy: np.ndarray, path: Path) -> None:
    """Save ``image`` (H, W) in [0, 1] with numbered (1-based) landmarks ``(L, 2)`` (x, y) as PNG."""
    from PIL import Image, ImageDraw

    grey = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    canvas = Image.fromarray(grey, mode="L").convert("RGB")
    draw = ImageDraw.Draw(canvas)
    h, w = grey.shape
    radius = max(2.0, min(h, w) / 150.0)
    for k, (x, y) in enumerate(np.asarray(landmarks_xy, dtype=np.float64)):
        box = (x - radius, y - radius, x + radius, y + radius)
        draw.ellipse(box, outline=(255, 40, 40), width=max(1, int(radius / 3)))
        draw.text((x + radius + 1, y - radius - 1), str(k + 1), fill=(255, 220, 0))
    canvas.save(path, format="PNG")


@torch.no_grad()
def predict_image(model: torch.nn.Module, image: np.ndarray, grid_hw: tuple[int, int], loss_name: str,
                  sigma: float, device: torch.device) -> np.ndarray:
    """Landmarks ``(L, 2)`` (x, y) in the pixels of ``image`` (H, W) float in [0, 1]."""
    from xlm_core.evaluation import model_logits
    from xlm_core.geometry import from_grid
    from xlm_core.imageio import resize_image
    from xlm_core.losses import decode_for_loss

    grid = resize_image(image, grid_hw)
    logits = model_logits(model, torch.tensor(grid, dtype=torch.float32)[None, None], device)
    grid_xy = decode_for_loss(loss_name, logits, sigma)[0].float().cpu().numpy().astype(np.float64)
    return np.asarray(from_grid(grid_xy, image.shape, grid_hw), dtype=np.float64)


def predict(checkpoint: str | os.PathLike, images: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
            device: str = "auto") -> dict:
    """Predict landmarks for ``images`` with ``checkpoint``; write them to ``out_dir``.

    Returns the landmarks.json content. Raises XLMError naming the file for a bad checkpoint
    or an unreadable/non-image input; then nothing is written to ``out_dir``.
    """
    from xlm_core.imageio import read_image
    from xlm_core.landmark_csv import write_landmark_csv
    from xlm_core.training import load_checkpoint, model_from_checkpoint, resolve_device

    paths = [Path(p) for p in images]
    if not paths:
        raise XLMError("no images given to predict")
    for path in paths:
        if not path.is_file():
            raise XLMError(f"{path}: image file not found")
    ckpt_path = Path(checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    dev = resolve_device(device)
    model = model_from_checkpoint(ckpt, ckpt_path).to(dev)
    grid_hw = (int(ckpt["test_size"][0]), int(ckpt["test_size"][1]))
    names = list(ckpt.get("landmark_names") or [str(i + 1) for i in range(int(ckpt["n_landmarks"]))])

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        results: dict[str, np.ndarray] = {}
        entries = []
        for image_id, path in zip(unique_ids(paths), paths):
            image = read_image(path)
            xy = predict_image(model, image, grid_hw, str(ckpt["loss"]), float(ckpt["sigma"]), dev)
            results[image_id] = xy
            draw_overlay(image, xy, stage / f"{image_id}{OVERLAY_SUFFIX}")
            entries.append({
                "image_id": image_id,
                "file": str(path),
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "landmarks": [{"landmark": k + 1, "name": names[k], "x": float(x), "y": float(y)}
                              for k, (x, y) in enumerate(xy)],
                "overlay": f"{image_id}{OVERLAY_SUFFIX}",
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
        }
        (stage / JSON_NAME).write_text(json.dumps(summary, indent=2) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(stage.iterdir()):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return summary
