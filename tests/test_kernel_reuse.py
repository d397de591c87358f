"""Reused notebook kernels (xlm_core.study.notebooks, reuse_kernel=True) and the inference batch.

A reused kernel must give each notebook what a fresh kernel gives it: no name of an earlier
notebook, an execution counter from 1; and a kernel that died, failed in an unknown way or
holds too much memory must be replaced.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from xlm_core.samples import inference_batch_size
from xlm_core.study import notebooks
from xlm_core.study.notebooks import NotebookFailed, execute_notebook, shutdown_reused_kernels

PROBE = '''# %% tags=["parameters"]
tag = ""
action = ""
# %%
import os
leaked = sorted(k for k in globals() if k.startswith("mine_"))
mine_value = tag
print(os.getpid(), leaked)
# %%
if action == "raise":
    raise RuntimeError("probe failed on purpose")
if action == "die":
    os._exit(3)
'''


@pytest.fixture
def probe(tmp_path) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(PROBE)
    yield path
    shutdown_reused_kernels()


def _run(probe: Path, out: Path, **params) -> tuple[int, list, list]:
    """(kernel pid, names leaked from earlier notebooks, execution counts) of one execution."""
    nb = json.loads(execute_notebook(probe, out, {"tag": "x", "action": "", **params},
                                     cwd=probe.parent, reuse_kernel=True).read_text())
    text = nb["cells"][2]["outputs"][0]["text"]
    text = "".join(text) if isinstance(text, list) else text
    pid, leaked = text.split(" ", 1)
    counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"]
    return int(pid), eval(leaked), counts  # noqa: S307 - our own probe's repr of a list


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").is_file() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_one_kernel_serves_notebooks_one_after_another_and_each_starts_clean(probe, tmp_path):
    first = _run(probe, tmp_path / "a.ipynb")
    second = _run(probe, tmp_path / "b.ipynb")
    third = _run(probe, tmp_path / "c.ipynb")
    assert first[0] == second[0] == third[0]
    assert first[1] == second[1] == third[1] == []  # mine_value of the earlier ones is gone
    assert first[2] == second[2] == third[2] == [1, 2, 3, 4]
    assert shutdown_reused_kernels() == 1
    assert not _alive(first[0])


def test_a_cell_error_keeps_the_kernel_and_the_next_notebook_is_clean(probe, tmp_path):
    pid, _, _ = _run(probe, tmp_path / "a.ipynb")
    with pytest.raises(NotebookFailed, match="probe failed on purpose"):
        _run(probe, tmp_path / "b.ipynb", action="raise")
    again = _run(probe, tmp_path / "c.ipynb")
    assert again[0] == pid and again[1] == [] and again[2] == [1, 2, 3, 4]


def test_a_dead_kernel_is_replaced(probe, tmp_path):
    pid, _, _ = _run(probe, tmp_path / "a.ipynb")
    with pytest.raises(NotebookFailed):
        _run(probe, tmp_path / "b.ipynb", action="die")
    assert (tmp_path / "b.ipynb").is_file()  # the failed notebook is kept, whole
    again = _run(probe, tmp_path / "c.ipynb")
    assert again[0] != pid and again[1] == []


def test_a_kernel_over_the_memory_limit_is_replaced(probe, tmp_path, monkeypatch):
    pid, _, _ = _run(probe, tmp_path / "a.ipynb")
    monkeypatch.setattr(notebooks, "REUSE_RSS_LIMIT_BYTES", 1)  # any kernel is over it
    again = _run(probe, tmp_path / "b.ipynb")
    assert again[0] != pid
    assert not _alive(pid)


def test_each_thread_keeps_its_own_kernel(probe, tmp_path):
    pids: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        pids[name] = [_run(probe, tmp_path / f"{name}{i}.ipynb")[0] for i in range(2)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("p", "q")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pids["p"][0] == pids["p"][1] and pids["q"][0] == pids["q"][1]
    assert pids["p"][0] != pids["q"][0]
    assert shutdown_reused_kernels() == 2


def test_without_reuse_every_notebook_has_a_kernel_of_its_own(probe, tmp_path):
    pids = set()
    for i in range(2):
        nb = json.loads(execute_notebook(probe, tmp_path / f"n{i}.ipynb", {"tag": "x", "action": ""},
                                         cwd=tmp_path).read_text())
        text = nb["cells"][2]["outputs"][0]["text"]
        pids.add(int(("".join(text) if isinstance(text, list) else text).split()[0]))
    assert len(pids) == 2
    assert shutdown_reused_kernels() == 0


@pytest.mark.parametrize(("batch", "size", "expected"), [
    (2, (64, 64), 16),      # the demo: 16 images of 64x64 a pass
    (2, (64, 46), 16),      # capped at 16
    (2, (128, 128), 4),
    (2, (512, 512), 2),     # the paper: the training batch, as before
    (8, (512, 416), 8),
    (32, (64, 64), 32),     # never fewer than the training batch
])
def test_inference_batch_size(batch, size, expected):
    assert inference_batch_size(batch, size) == expected


def test_scores_do_not_depend_on_the_inference_batch(tmp_path):
    """Eval-mode BatchNorm: the same predictions for 2 or 16 images a pass (fp32)."""
    import numpy as np
    import torch

    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.datasets.synth import write_phantoms
    from xlm_core.evaluation import predict_split
    from xlm_core.models import build_model
    from xlm_core.samples import run_samples
    from xlm_core.config import RunConfig

    root = tmp_path / "hand"
    write_phantoms("hand", root, n=10, seed=0)
    cfg = RunConfig(dataset="hand", root=str(root), out=str(tmp_path / "run"), train_size=(64, 64),
                    test_size=(64, 64), extra={"wrist_pair": [1, 5]})
    samples = run_samples(cfg)
    torch.manual_seed(0)
    model = build_model("unet", "vgg11", samples.lset.n_landmarks)
    cpu = torch.device("cpu")
    preds = [predict_split(model, samples.test, (64, 64), "spatial_ce", 1.5, PreprocessCache(), cpu,
                           batch_size=b) for b in (2, 16)]
    assert len(samples.test) > 2
    np.testing.assert_allclose(preds[0].grid_subpixel, preds[1].grid_subpixel, atol=1e-3)
    np.testing.assert_array_equal(preds[0].grid_argmax, preds[1].grid_argmax)
