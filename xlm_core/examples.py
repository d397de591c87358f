"""Figure arrays from the compute floor: a model's outputs on chosen images.

The book's figures (:mod:`xlm_core.report.plots`) draw these arrays; building them needs the
dataset loaders, the models and a run's checkpoint, so they live here, below the book layer.
Floor: training (imports checkpoints, samples, models, losses, evaluation; never the report).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from xlm_core import XLMError

# torch is imported lazily: `import xlm_core.examples` costs nothing


def quiet_imports() -> None:
    """Import the torch side once with tqdm's "IProgress not found" notice silenced.

    The notice is raised through huggingface_hub in a kernel without ipywidgets: noise in every
    notebook's output. Later imports find the modules loaded.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import tqdm.auto  # noqa: F401

        import xlm_core.evaluation
        import xlm_core.models  # noqa: F401


def _predict_grid(model, image_hw_grid, encoder: str, loss: str, sigma: float):
    """(logits (L, H, W) numpy, decoded (L, 2) grid (x, y)) for one grey image (H, W) tensor."""
    import torch

    from xlm_core.evaluation import model_logits
    from xlm_core.losses import decode_for_loss

    model.eval()
    with torch.no_grad():
        logits = model_logits(model, image_hw_grid[None], torch.device("cpu"))
        decoded = decode_for_loss(loss, logits, sigma)
    return logits[0].float().numpy(), decoded[0].float().numpy()


def pipeline_arrays(dataset: str, root: str | Path, size_hw: tuple[int, int] = (128, 128),
                    sigma: float = 2.0, arch: str = "unetplusplus", encoder: str = "vgg19",
                    checkpoint: str | Path | None = None, loss: str = "mse", index: int = 0,
                    seed: int = 0, **options) -> dict:
    """The real intermediate arrays of the method on one training image (figure 2).

    Calls the functions training uses: the dataset loader, :class:`HeatmapDataset` (resize,
    ``to_grid``, Gaussian targets), the default augmenter (drawn from ``seed``), the model and
    the loss-aware decoder.

    Args:
        dataset: a dataset name or descriptor path (:func:`xlm_core.datasets.load_dataset`).
        root: the dataset's folder.
        size_hw: ``(H, W)`` of the grid the image is resized to.
        sigma: Gaussian sigma of the targets, in grid pixels.
        arch: architecture of the untrained model (when no ``checkpoint``).
        encoder: encoder of the untrained model (when no ``checkpoint``).
        checkpoint: a finished run's ``checkpoint.pt``; None: an untrained
            ``build_model(arch, encoder)`` seeded with ``seed``.
        loss: the loss whose decoder decodes the output.
        index: which training image (modulo their number).
        seed: the augmentation's and the untrained model's seed.
        **options: loader options of the dataset.

    Returns:
        A dict: ``image`` (H, W), ``landmarks_grid`` (L, 2), ``targets`` (L, H, W),
        ``augmented_image``, ``augmented_landmarks``, ``augmented_targets``, ``output``
        (L, H, W) logits, ``decoded`` (L, 2) grid (x, y), ``sigma``, ``model`` (a label), ``id``.

    Raises:
        XLMError: when the dataset has no usable sample (and as the loader and
            :func:`xlm_core.checkpoints.load_checkpoint`).
    """
    quiet_imports()
    import torch

    from xlm_core.augment import default_augmenter
    from xlm_core.datasets import load_dataset
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.models import build_model
    from xlm_core.torchdata import HeatmapDataset

    lset = load_dataset(dataset, str(root), **options)
    samples = lset.subset(lset.train_ids) or lset.samples
    if not samples:
        raise XLMError(f"{root}: dataset {dataset!r} has no usable sample")
    sample = samples[index % len(samples)]
    cache = PreprocessCache()
    plain = HeatmapDataset([sample], size_hw, sigma, cache)[0]
    augmented = HeatmapDataset([sample], size_hw, sigma, cache, augmenter=default_augmenter(),
                               seed=seed)[0]
    if checkpoint is not None:
        from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint

        model = model_from_checkpoint(load_checkpoint(Path(checkpoint)), Path(checkpoint))
        label = f"trained {model.xlm_spec['arch']}/{model.xlm_spec['encoder']}"
        encoder = model.xlm_spec["encoder"]
    else:
        torch.manual_seed(seed)
        model = build_model(arch, encoder, lset.n_landmarks, encoder_weights="none")
        label = f"untrained {arch}/{encoder}"
    output, decoded = _predict_grid(model, plain["image"], encoder, loss, sigma)
    return {
        "id": sample.id,
        "image": plain["image"][0].numpy(),
        "landmarks_grid": plain["landmarks_grid"].numpy(),
        "targets": plain["heatmaps"].numpy(),
        "augmented_image": augmented["image"][0].numpy(),
        "augmented_landmarks": augmented["landmarks_grid"].numpy(),
        "augmented_targets": augmented["heatmaps"].numpy(),
        "output": output,
        "decoded": decoded,
        "sigma": float(sigma),
        "model": label,
    }


def _finished_run(run_path: str | Path):
    """(checkpoint path, its description, the run's RunConfig, the model, the run's samples)."""
    from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint
    from xlm_core.config import RunConfig
    from xlm_core.samples import run_samples

    path = Path(run_path) / "checkpoint.pt"
    if not path.is_file():
        raise XLMError(f"{path}: no checkpoint (the run has not trained)")
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta", ckpt)  # the checkpoint describes itself (checkpoints.checkpoint_description)
    cfg = RunConfig.from_dict(dict(meta["config"]))
    return path, meta, cfg, model_from_checkpoint(ckpt, path), run_samples(cfg)


def _examples_of(samples, meta: dict, cfg, model) -> list[dict]:
    """The model's logits and decoded landmarks on ``samples``, on the run's test grid."""
    import torch

    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.torchdata import HeatmapDataset

    grid_hw = tuple(int(v) for v in meta["test_size"])
    data = HeatmapDataset(list(samples), grid_hw, float(cfg.sigma), PreprocessCache())
    out = []
    for k in range(len(data)):
        item = data[k]
        with torch.no_grad():
            heatmaps, pred = _predict_grid(model, item["image"], cfg.encoder, meta.get("loss", cfg.loss),
                                           float(meta.get("sigma", cfg.sigma)))
        out.append({"id": item["id"], "image": item["image"][0].numpy(), "heatmaps": heatmaps,
                    "gt_grid": item["landmarks_grid"].numpy(), "pred_grid": pred, "grid_hw": grid_hw})
    return out


def run_example(run_path: str | Path, index: int = 0) -> dict:
    """One test image of a finished run with its predicted heatmaps, on the run's test grid.

    Args:
        run_path: the run directory (holding ``checkpoint.pt``).
        index: which test image (modulo their number).

    Returns:
        A dict: ``id``, ``image`` (H, W), ``heatmaps`` (L, H, W) logits, ``gt_grid`` and
        ``pred_grid`` (L, 2) (x, y) grid px, ``grid_hw``.

    Raises:
        XLMError: for a missing checkpoint or an empty test split.
    """
    quiet_imports()
    path, meta, cfg, model, samples = _finished_run(run_path)
    test = samples.test
    if not test:
        raise XLMError(f"{path}: the run's test split is empty")
    return _examples_of([test[index % len(test)]], meta, cfg, model)[0]


def run_examples(run_path: str | Path, ids: Iterable[str], split: str = "test") -> list[dict]:
    """Selected images of a finished run (e.g. its worst predictions) with their predicted heatmaps.

    The model runs on these images only, on the run's test grid.

    Args:
        run_path: the run directory (holding ``checkpoint.pt``).
        ids: image ids of the run's ``split``.
        split: ``"test"`` or ``"heldout"``.

    Returns:
        In the order of ``ids``, dicts with ``id``, ``image`` (H, W), ``heatmaps`` (L, H, W)
        logits, ``gt_grid`` and ``pred_grid`` (L, 2) (x, y) grid px, ``grid_hw``.

    Raises:
        XLMError: for a missing checkpoint or an id not in the run's ``split``.
    """
    quiet_imports()
    path, meta, cfg, model, samples = _finished_run(run_path)
    pool = {s.id: s for s in (samples.test if split == "test" else samples.heldout)}
    ids = [str(i) for i in ids]
    missing = [i for i in ids if i not in pool]
    if missing:
        raise XLMError(f"{path}: images {missing[:5]} are not in the run's {split} split")
    return _examples_of([pool[i] for i in ids], meta, cfg, model)
