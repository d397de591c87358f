"""How the real profile's ceph recipe was chosen: candidate settings on a held-out fold of ceph's
*training* ids, never its test ids (docs/decisions.md, "The real profile").

1. A data folder that holds only the training ids: ``OUT/data/hamedan_university_dataset/``,
   symbolic links to every picture and both readers' files of the Hamedan set except the test
   ids of the descriptor (``xlm_core/datasets/descriptors/ceph.yaml``, ids 071-100). The test
   images cannot be read by any run here: they are not in the folder.
2. One ``xlm train`` per candidate, on fold 0 of 3 of those ids (``--folds 3 --fold 0``: the 66
   usable training images of the shared sample give 44 to train, of which 7 are carved out for
   early stopping, and 22 held out), seed 0 unless the candidate says otherwise, two side by
   side, one thread each. Finished runs are kept and not trained again.
3. A table of the held-out MRE of every candidate and, paired over the held-out images, its
   difference from the reference candidate with a 95 % bootstrap interval
   (`xlm_core.report.stats.paired_bootstrap_ci`, as the book's tables).

The base recipe is the profile's first setting (160x128, sigma 2, lr 2e-3, 36 epochs on the
fold, about the 672 steps of 24 epochs on the profile's 56 fit images); each candidate changes
what its name says. About 40 min on two cores (66 min of runs, two side by side)::

    python benchmarks/real_recipe.py --data-root ../shared/data --out /tmp/real-recipe
    python benchmarks/real_recipe.py --data-root DIR --out OUT --only base sig1.5   # some

``--dataset spine`` does the same for the in-domain source (issue: a source must learn its own
task before a chain through it means anything): a folder with spine's training ids only (the
images linked, ``filenames.csv`` and ``landmarks.csv`` rewritten without the 97 test rows), fold
0 of 3 of them *grouped by series* (``--folds-over all`` on that folder: a patient's images in
one fold), and candidates of size, sigma, length and learning rate, each scored by its held-out
MRE and its ratio to the mean shape (the chains need <= 0.35)::

    python benchmarks/real_recipe.py --dataset spine --data-root ../shared/data --out /tmp/spine-recipe
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

from xlm_core.report.stats import paired_bootstrap_ci
from xlm_core.report.tables import per_image_errors

REPO = Path(__file__).resolve().parents[1]
FOLDER = "hamedan_university_dataset"
SPINE_FOLDER = "boostnet_labeldata"
ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "MPLBACKEND": "Agg", "XLM_PROGRESS": "0"}
BASE = ["--dataset", "ceph", "--folds", "3", "--fold", "0", "--arch", "unetplusplus",
        "--encoder", "tu-tf_efficientnet_lite0", "--encoder-weights", "imagenet", "--loss", "spatial_ce",
        "--lr-schedule", "cosine", "--batch-size", "2", "--val-fraction", "0.15", "--precise-bn",
        "--option", "annotator=mean", "--patience", "100", "--train-size", "160", "128",
        "--test-size", "160", "128", "--lr", "2e-3", "--sigma", "2", "--epochs", "36", "--seed", "0"]
S192 = ["--train-size", "192", "160", "--test-size", "192", "160"]
REFERENCE = "sig1.5_192x160_ep24"  # the profile's recipe: 192x160, sigma 1.5, 16 profile epochs
INIT = "{out}/runs/" + REFERENCE + "/checkpoint.pt"  # second-stage candidates start from it
#: name -> flags over BASE (argparse: a later flag wins)
CANDIDATES = {
    "base": [],
    "base_seed1": ["--seed", "1"],
    "sig1.0": ["--sigma", "1.0"],
    "sig1.5": ["--sigma", "1.5"],
    "sig1.5_seed1": ["--sigma", "1.5", "--seed", "1"],
    "sig3": ["--sigma", "3"],
    "sig1.5_ep54": ["--sigma", "1.5", "--epochs", "54"],
    "sig1.5_192x160": ["--sigma", "1.5", *S192],
    "sig1.5_192x160_ep24": ["--sigma", "1.5", *S192, "--epochs", "24"],
    "sig1.5_192x160_ep24_seed1": ["--sigma", "1.5", *S192, "--epochs", "24", "--seed", "1"],
    # the chosen recipe in bf16 autocast (AVX512-BF16 here, no AMX): does it keep the accuracy?
    "sig1.5_192x160_ep24_bf16": ["--sigma", "1.5", *S192, "--epochs", "24", "--precision", "bf16"],
    # a second ceph stage from the chosen recipe's checkpoint (the matched control's and the
    # in-domain chain's last stage), at three peak learning rates
    **{f"ft_lr{lr}": ["--sigma", "1.5", *S192, "--epochs", "24", "--init", INIT, "--lr", lr]
       for lr in ("2e-3", "5e-4", "1e-4")},
}


SPINE_BASE = ["--dataset", "spine", "--folds", "3", "--fold", "0", "--folds-over", "all", "--arch", "unetplusplus",
              "--encoder", "tu-tf_efficientnet_lite0", "--encoder-weights", "imagenet", "--loss", "spatial_ce",
              "--lr-schedule", "cosine", "--batch-size", "2", "--val-fraction", "0.15", "--precise-bn",
              "--patience", "100000", "--train-size", "256", "96", "--test-size", "256", "96", "--lr", "2e-3",
              "--sigma", "1.5", "--steps", "2000", "--seed", "0"]
S384 = ["--train-size", "384", "128", "--test-size", "384", "128"]
#: spine candidates (about 2,000 steps: 19 epochs of the fold's ~210 fit images; the profile's
#: spine stage had 489)
SPINE_CANDIDATES = {
    "base": [],
    "sig3": ["--sigma", "3"],
    "steps4000": ["--steps", "4000"],
    "384x128": S384,
    "lr5e-4": ["--lr", "5e-4"],
    "sig3_steps4000": ["--sigma", "3", "--steps", "4000"],
}


def training_only_folder(data_root: Path, out: Path) -> Path:
    """``out/data`` holding FOLDER with links to every file of the set except the test ids."""
    source = data_root / FOLDER
    if not source.is_dir():
        sys.exit(f"{source}: not found (the Hamedan set, as vpouramin/Cephalometric-Landmarking-public lays it out)")
    descriptor = yaml.safe_load((REPO / "xlm_core/datasets/descriptors/ceph.yaml").read_text())
    test_ids = set(descriptor["split"]["test"])
    target = out / "data" / FOLDER
    linked = skipped = 0
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        if path.stem in test_ids:
            skipped += 1
            continue
        link = target / path.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(link):
            link.symlink_to(path.resolve())
        linked += 1
    print(f"{target}: {linked} files linked, {skipped} files of the {len(test_ids)} test ids left out")
    return out / "data"


def spine_training_only_folder(data_root: Path, out: Path) -> Path:
    """``out/data`` holding SPINE_FOLDER: every training image linked, the two label files
    rewritten without the test rows (the descriptor's split.test), so no run can read a test image."""
    source = data_root / SPINE_FOLDER
    labels = source / "labels" / "training"
    if not (labels / "filenames.csv").is_file():
        sys.exit(f"{source}: not found (the AASCE set, as AryanRaj315/EfficientDet.Pytorch lays it out)")
    descriptor = yaml.safe_load((REPO / "xlm_core/datasets/descriptors/spine.yaml").read_text())
    test_ids = set(descriptor["split"]["test"])
    names = (labels / "filenames.csv").read_text().splitlines()
    rows = (labels / "landmarks.csv").read_text().splitlines()
    keep = [i for i, name in enumerate(names) if name.strip() and Path(name.strip()).stem not in test_ids]
    target = out / "data" / SPINE_FOLDER
    (target / "labels" / "training").mkdir(parents=True, exist_ok=True)
    (target / "data" / "training").mkdir(parents=True, exist_ok=True)
    for i in keep:
        link = target / "data" / "training" / names[i].strip()
        if not os.path.lexists(link):
            link.symlink_to((source / "data" / "training" / names[i].strip()).resolve())
    for name, lines in (("filenames.csv", names), ("landmarks.csv", rows)):
        (target / "labels" / "training" / name).write_text("".join(lines[i] + "\n" for i in keep))
    print(f"{target}: {len(keep)} training rows kept, {len(names) - len(keep)} test rows left out")
    return out / "data"


def train(name: str, data: Path, out: Path, dataset: str = "ceph") -> None:
    run_dir = out / "runs" / name
    if (run_dir / "metrics.json").is_file():
        return
    base, candidates = (BASE, CANDIDATES) if dataset == "ceph" else (SPINE_BASE, SPINE_CANDIDATES)
    flags = [f.replace("{out}", str(out)) for f in candidates[name]]
    cmd = [sys.executable, "-m", "xlm_core.cli", "train", *base, *flags,
           "--root", str(data), "--out", str(run_dir)]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f"{name}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                       env={**os.environ, **ENV})
    print(f"{name}: done")


def held_out(run_dir: Path) -> tuple[dict, pd.Series]:
    """The held-out fold's metrics and per-image errors (ceph: the ``heldout`` part beside an
    empty test split; spine: folds over the tuning folder's images, so the fold is ``test``)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    split = "heldout" if metrics["heldout"] is not None else "test"
    if split == "heldout" and metrics["test"] is not None:
        sys.exit(f"{run_dir}: scored test images; the tuning folder must not hold any")
    metrics["fold_scores"] = metrics[split]
    return metrics, per_image_errors(run_dir, "clean", split=split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("ceph", "spine"), default="ceph", help="whose recipe (default ceph)")
    parser.add_argument("--data-root", type=Path, required=True, help=f"a folder holding {FOLDER}/ or {SPINE_FOLDER}/")
    parser.add_argument("--out", type=Path, required=True, help="tuning folder (runs are kept)")
    parser.add_argument("--only", nargs="+", choices=sorted({*CANDIDATES, *SPINE_CANDIDATES}),
                        help="these candidates only")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (default 2)")
    args = parser.parse_args()
    if args.dataset == "spine":
        return spine_main(args)
    names = args.only or list(CANDIDATES)
    data = training_only_folder(args.data_root, args.out)
    second = [n for n in names if INIT in CANDIDATES[n]]
    if second and REFERENCE not in names:
        names.insert(0, REFERENCE)  # the second stages start from its checkpoint
    with ThreadPoolExecutor(args.jobs) as pool:
        for batch in ([n for n in names if n not in second], second):  # second stages after it
            list(pool.map(lambda n: train(n, data, args.out), batch))
    scored = {n: held_out(args.out / "runs" / n) for n in names}
    ref_name = REFERENCE if REFERENCE in scored else names[0]
    print(f"fold 0 of 3 of ceph's training ids; mean shape {mean_shape(scored):.1f} px on the held-out images")
    print(candidate_table(scored, ref_name, lambda m, clean: {"SDR 14 px (%)": round(clean["sdr"]["14"], 1)}))


def mean_shape(scored: dict) -> float:
    """The mean shape's MRE on the held-out images (the same for every candidate)."""
    return next(iter(scored.values()))[0]["fold_scores"]["clean"]["mean_shape_mre"]


def candidate_table(scored: dict, ref_name: str, columns) -> str:
    """Markdown: each candidate's held-out MRE, ``columns(metrics, clean score)`` (a dict), and,
    paired over the held-out images, its difference from ``ref_name`` with a 95 % bootstrap CI."""
    reference = scored[ref_name][1]
    rows = []
    for name, (m, per_image) in scored.items():
        clean = m["fold_scores"]["clean"]
        diff = (per_image - reference).dropna().to_numpy()
        low, high = paired_bootstrap_ci(diff)
        rows.append({"candidate": name, "held-out MRE (px)": round(clean["mre"], 2), **columns(m, clean),
                     f"Δ vs {ref_name} (px)": round(diff.mean(), 2), "95 % CI": f"[{low:+.2f}, {high:+.2f}]",
                     "best epoch": f"{m['best_epoch']}/{m['epochs_run']}",
                     "train min": round(m["train_seconds"] / 60, 1), "images": clean["n_images"]})
    return pd.DataFrame(rows).sort_values("held-out MRE (px)").to_markdown(index=False)


def spine_main(args) -> None:
    names = args.only or list(SPINE_CANDIDATES)
    data = spine_training_only_folder(args.data_root, args.out)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda n: train(n, data, args.out, "spine"), names))
    scored = {n: held_out(args.out / "runs" / n) for n in names}
    print(f"fold 0 of 3 (grouped by series) of spine's training ids; mean shape {mean_shape(scored):.1f} px "
          "on the held-out images")
    print(candidate_table(scored, names[0], lambda m, clean: {
        "x mean shape": round(clean["mre"] / clean["mean_shape_mre"], 3),
        "SDR 20 px (%)": round(clean["sdr"]["20"], 1), "steps": m.get("steps_run")}))


if __name__ == "__main__":
    main()
