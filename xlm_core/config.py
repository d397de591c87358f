"""One run of the study, fully described: the contract between the runner, the run
notebook and the training engine.

A :class:`RunConfig` is what ``xlm train`` parses, what the study runner expands a
profile into, and what papermill injects into ``notebooks/train_evaluate.py`` (its
fields are the notebook's parameters). Its normalised form is hashed into the run id.

``metrics.json`` written by a run (the runner and the aggregation notebooks read it)::

    {
      "config": {...RunConfig fields...},
      "dataset": "hand", "data_source": "synthetic" | "real",
      "unit": "mm" | "px", "scale": "<Scale.describe()>", "wrist_pair": [2, 6] | null,
      "thresholds": [2.0, 4.0, 10.0],
      "mre": <test MRE, clean protocol>, "mean_shape_mre": <same images, same protocol>,
      "decoder": "softargmax-r5-sym" | "newton",   # xlm_core.registry.decoder_name
      "trace_decoder": <decoder of history.csv's trace> | null,
      "test":    {"clean": SCORE, "zhu": SCORE},      # the dataset's test split
      "heldout": {"clean": SCORE, "zhu": SCORE} | null,  # the CV fold's held-out part
      "transfer": TRANSFER_REPORT | null,
      "epochs_run": int, "best_epoch": int, "train_seconds": float,
    }
    SCORE = {"n_images", "n_landmarks", "mre", "mre_std", "unit", "protocol",
             "sdr": {"<threshold>": percent}, "per_landmark_mre": [...],
             "mean_shape_mre": float}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields


@dataclass
class RunConfig:
    dataset: str  # "head" | "hand" | "chest" | path to a dataset.yaml
    root: str  # dataset root folder
    out: str  # run directory
    arch: str = "unetplusplus"
    encoder: str = "vgg19"
    encoder_weights: str = "none"  # "imagenet" | "none" | path to a weights file
    init: str | None = None  # checkpoint of an earlier run (transfer)
    epochs: int = 200
    patience: int = 20
    train_size: tuple[int, int] = (512, 512)  # (H, W)
    test_size: tuple[int, int] | None = None  # (H, W); None: the dataset's paper size
    batch_size: int = 2
    lr: float = 1e-4
    lr_schedule: str = "plateau"  # "plateau" (the paper: x0.1 after patience//2 epochs) | "cosine"
    loss: str = "mse"
    sigma: float = 2.0  # Gaussian sigma in heatmap-grid pixels
    folds: int | None = None
    fold: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # "auto" | "fp32" | "bf16" (evaluation.resolve_precision); not in the run id
    val_fraction: float = 0.1  # early-stopping set, carved out of the training part
    train_limit: int | None = None  # use only the first N training images (demo/tests)
    num_workers: int = 0
    checkpoint_every_s: float = 0.0  # resume state (last.pt) and best weights written at most this often; 0: every epoch
    trace_mre: bool = False  # score val + test after every epoch (history.csv); recorded, never selects
    precise_bn: bool = False  # re-estimate BatchNorm statistics on the fitted images before scoring
    extra: dict = field(default_factory=dict)  # dataset options (annotator, wrist pair, ...)

    def normalised(self) -> dict:
        """Fields that define the result (not where it is written), JSON-stable."""
        d = asdict(self)
        d.pop("out")
        d.pop("device")
        d.pop("precision")  # like the device: where and how fast, recorded in metrics.json
        d.pop("num_workers")
        d.pop("checkpoint_every_s")  # where the resume state is written, not what is trained
        d.pop("trace_mre")  # a record of the training, which it leaves unchanged (tested)
        # settings added later enter the id only when they differ from the behaviour before
        # them, so the runs of earlier studies keep their ids
        for key, before in (("lr_schedule", "plateau"), ("precise_bn", False)):
            if d[key] == before:
                d.pop(key)
        for key in ("train_size", "test_size"):
            if d[key] is not None:
                d[key] = [int(v) for v in d[key]]
        return d

    def run_hash(self, data_fingerprint: str = "") -> str:
        blob = json.dumps(self.normalised(), sort_keys=True) + "|" + data_fingerprint
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown run parameter(s): {sorted(unknown)}; allowed: {sorted(known)}")
        d = dict(d)
        for key in ("train_size", "test_size"):
            if d.get(key) is not None:
                d[key] = tuple(int(v) for v in d[key])
        return cls(**d)
