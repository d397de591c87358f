"""Publishing: the re-run snippet the book build writes into each notebook page, the launch
buttons' configuration, the citation and licence files agreeing with it, the front page's
answer (real x-rays first when the build has them) and the book workflow."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import sys

import nbformat
import pytest
import yaml
from conftest import SHARED_DATA

from xlm_core.report import book, load_study
from xlm_core.report.analysis import human_limit_from_dataset

sys.path.insert(0, str(Path(__file__).parent))
from test_report import _write_run, write_fake_study

REPO = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


def _executed_run(path: Path, results: str, parameters: dict) -> Path:
    """A notebook as papermill leaves it: the record in metadata, the injected cell after the
    parameters cell."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# One run: train and evaluate\n\nProse."),
        nbformat.v4.new_code_cell("config = {}", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f"config = {parameters['config']!r}",
                                  metadata={"tags": ["injected-parameters"]}),
    ])
    nb.metadata["papermill"] = {"parameters": parameters, "input_path": "/tmp/x.ipynb"}
    nbformat.write(nb, path)
    return path


def _bash_block(markdown: str) -> list[str]:
    """The snippet's bash block as the shell would split it."""
    block = re.search(r"```bash\n(.*?)```", markdown, re.S)
    assert block, markdown
    return shlex.split(block.group(1).replace("\\\n", " "))


def _papermill_args(words: list[str]) -> tuple[dict, dict]:
    """``-y NAME: VALUE`` (YAML) and ``-p NAME VALUE`` of a papermill command line."""
    start = words.index(".venv/bin/papermill")
    yaml_params, plain = {}, {}
    i = start
    while i < len(words):
        if words[i] == "-y":
            yaml_params.update(yaml.safe_load(words[i + 1]))
            i += 2
        elif words[i] == "-p":
            plain[words[i + 1]] = words[i + 2]
            i += 3
        else:
            i += 1
    return yaml_params, plain


def test_run_page_gets_a_rerun_snippet_with_its_recorded_parameters(tmp_path: Path) -> None:
    results = str(tmp_path / "abs" / "results" / "demo")
    config = {"dataset": "head", "root": f"{results}/data/head", "out": f"{results}/runs/abc",
              "init": f"{results}/runs/parent/checkpoint.pt", "epochs": 3, "lr": 0.001,
              "train_size": [64, 64], "fold": None, "extra": {}}
    note = "demo profile: synthetic phantoms; the numbers don't speak to real x-rays"
    params = {"config": config, "run_id": "abc", "study": "demo", "profile_note": note}
    src = _executed_run(tmp_path / "run.ipynb", results, params)

    dst = book.copy_notebook(src, tmp_path / "book" / "abc.ipynb", title="Run abc",
                             replacements={results: "results/demo"},
                             rerun={"source": "notebooks/train_evaluate.py", "out_name": "run-abc",
                                    "study": "demo", "overrides": {"out": "/tmp/run-abc"}})
    nb = nbformat.read(dst, as_version=4)
    nbformat.validate(nb)
    # right after the title, once, with a fixed id (a rebuilt page keeps its bytes)
    assert nb.cells[0].source.startswith("# Run abc")
    snippets = [c for c in nb.cells if book.RERUN_TAG in c.metadata.get("tags", [])]
    assert len(snippets) == 1 and nb.cells[1] is snippets[0] and snippets[0].id == book.RERUN_TAG
    text = snippets[0].source
    assert str(tmp_path) not in text  # no path of the building machine
    assert "xlm study run demo" in text

    words = _bash_block(text)
    assert words[:5] == [".venv/bin/jupytext", "--to", "ipynb", "notebooks/train_evaluate.py", "-o"]
    converted = words[5]
    assert words[words.index(".venv/bin/papermill") + 1] == converted
    recorded, single = _papermill_args(words)
    # the record, parsed back from the command line, is the executed notebook's, made portable
    assert recorded == {"config": {**config, "root": "results/demo/data/head",
                                   "out": "results/demo/runs/abc",
                                   "init": "results/demo/runs/parent/checkpoint.pt"},
                        "run_id": "abc", "study": "demo", "profile_note": note}
    assert single == {"out": "/tmp/run-abc"}
    # the snippet is from the record, not typed: another record gives another command
    other = book.rerun_markdown("notebooks/train_evaluate.py", {**params, "run_id": "xyz"}, "run-xyz")
    assert _papermill_args(_bash_block(other))[0]["run_id"] == "xyz"


def test_a_page_without_a_title_gets_the_snippet_first_and_without_a_record_no_parameters(
        tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(nb, tmp_path / "a.ipynb")
    dst = book.copy_notebook(tmp_path / "a.ipynb", tmp_path / "b.ipynb",
                             rerun={"source": "notebooks/transfer.py", "out_name": "transfer"})
    cells = nbformat.read(dst, as_version=4).cells
    assert cells[0].metadata["tags"] == [book.RERUN_TAG] and cells[1].source == "x = 1"
    words = _bash_block(cells[0].source)
    assert "-y" not in words and words[-3:] == ["/tmp/transfer.ipynb", "-k", "python3"]
    assert words[5] == words[-4] != words[-3] == "/tmp/transfer.ipynb"  # never executed in place
    # no snippet unless asked for (the copy is otherwise unchanged)
    plain = book.copy_notebook(tmp_path / "a.ipynb", tmp_path / "c.ipynb")
    assert [c.source for c in nbformat.read(plain, as_version=4).cells] == ["x = 1"]


def test_launch_buttons_are_links_that_the_offline_check_accepts(tmp_path: Path) -> None:
    cfg = _config()
    launch = cfg["launch_buttons"]
    assert launch["binderhub_url"].startswith("https://") and launch["colab_url"].startswith("https://")
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", cfg["repository"]["url"])
    # sphinx-book-theme's launch buttons and repository button: anchors, not scripts
    url = cfg["repository"]["url"]
    (tmp_path / "page.html").write_text(
        f'<a href="{launch["binderhub_url"]}/v2/gh/o/r/main?urlpath=lab/tree/x.ipynb" '
        f'class="btn">Binder</a><a href="{url}"><i class="fab fa-github"></i></a>'
        '<script src="_static/scripts/bootstrap.js"></script>')
    assert book.check_offline_html(tmp_path) == []
    (tmp_path / "bad.html").write_text(f'<script src="{launch["binderhub_url"]}/thebe.js"></script>')
    assert len(book.check_offline_html(tmp_path)) == 1


def test_citation_and_readme_name_the_repository_of_config_and_the_paper() -> None:
    url = _config()["repository"]["url"]
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["repository-code"] == url, "CITATION.cff: repository-code differs from _config.yml"
    (paper,) = cff["references"]
    assert "2403.01470" in paper["url"] and paper["year"] == 2024
    assert paper["authors"][0]["family-names"] == "Di Via"
    intro = (REPO / "book" / "intro.md").read_text()
    assert url in intro and "2403.01470" in intro, "book/intro.md: the citation block"


def test_no_page_presents_a_pages_address_as_live() -> None:
    """The Pages address serves a book only once a repository has enabled Pages and run the
    workflow: the README and the book name it only as where the workflow publishes the book of
    the repository it runs in (OWNER, REPO), never as one repository's live site."""
    texts = {"README.md": (REPO / "README.md").read_text()}
    texts.update({f"book/{p.name}": p.read_text() for p in (REPO / "book").glob("*.md")})
    for name, text in texts.items():
        for address in re.findall(r"https?://[\w.-]*github\.io[^\s)>`]*", text):
            assert address == "https://OWNER.github.io/REPO/", f"{name}: {address} presented as live"
    head = "\n".join(texts["README.md"].splitlines()[:15])
    assert "https://OWNER.github.io/REPO/" in head and ".github/workflows/book.yml" in head


def test_the_licence_is_the_one_pyproject_declares() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert 'license = {text = "MIT"}' in (REPO / "pyproject.toml").read_text()


# --------------------------------------------------------------------------- the front page

#: the real profile's chains for ceph (the stages before it) and a known test MRE for each
REAL_CHAINS = {("imagenet",): 8.7, ("imagenet", "spine"): 9.1, ("scratch",): 10.8}
REAL_CONTROL = 9.3  # imagenet>ceph for the steps of imagenet>spine>ceph, one schedule
CEPH_FOLDS = (["001", "003", "004"], ["005", "006", "007"])  # usable in both readers


def write_fake_real_study(results: Path, ceph_root: Path) -> Path:
    """A hand-made ``results/real``, as the real profile lays it out (one target, ceph, in two
    folds): per seed a spine source stage (no fold), and per fold ``imagenet>ceph``,
    ``imagenet>spine>ceph`` (from the source), ``scratch>ceph`` and the compute control; known
    MREs (+0.2 for seed 1), runs reading ``ceph_root``."""
    runs = []
    for seed in (0, 1):
        spine = {"run_id": f"spine-s{seed}", "kind": "transfer", "dataset": "spine", "chain": ["imagenet"],
                 "stages": ["imagenet", "spine"], "arch": "unetplusplus", "encoder": "efficientnet-lite0",
                 "fold": None, "seed": seed, "depends_on": [],
                 "config": {"dataset": "spine", "root": str(ceph_root.parent / "spine"),
                            "encoder_weights": "imagenet", "seed": seed}}
        _write_run(results, dict(spine), 3.0, heldout=False)  # 0.3 x its mean shape: a source that learned
        runs.append(spine)
        chains = [(c, m, None) for c, m in REAL_CHAINS.items()] + [(("imagenet",), REAL_CONTROL, "imagenet>spine>ceph")]
        for chain, mre, matches in chains:
            for fold, ids in enumerate(CEPH_FOLDS):
                rid = f"ceph-{'-'.join(chain)}{'-long' if matches else ''}-s{seed}-f{fold}"
                run = {"run_id": rid, "kind": "transfer", "dataset": "ceph", "chain": list(chain),
                       "stages": [*chain, "ceph"], "matches": matches, "arch": "unetplusplus",
                       "encoder": "efficientnet-lite0", "fold": fold, "folds": 2, "seed": seed,
                       "depends_on": [f"spine-s{seed}"] if chain == ("imagenet", "spine") else [],
                       "config": {"dataset": "ceph", "root": str(ceph_root), "seed": seed,
                                  "encoder_weights": "none" if chain[0] == "scratch" else "imagenet"}}
                transfer = {"source": f"runs/spine-s{seed}/checkpoint.pt"} if chain == ("imagenet", "spine") else None
                _write_run(results, {**run, "_transfer": transfer}, mre + 0.2 * seed, heldout=False, image_ids=ids)
                runs.append(run)
    study = {"study": "real", "profile": "real", "profile_note": "hand-made real-study stand-in",
             "data_source": "real", "settings": {"transfer": {"targets": ["ceph"]}}, "runs": runs}
    (results / "study.json").write_text(json.dumps(study))
    return results


def test_the_front_page_leads_with_real_x_rays_then_the_labelled_phantoms(tmp_path: Path) -> None:
    demo = load_study(write_fake_study(tmp_path / "results" / "demo"))
    real = load_study(write_fake_real_study(tmp_path / "results" / "real",
                                            tmp_path / "gone" / "hamedan_university_dataset"))
    page = book.front_page_markdown(demo, real)
    assert page.index("### On real x-rays") < page.index("### On synthetic phantoms (the `ci` study)")
    first, phantoms = page.split("### On synthetic phantoms")
    assert "profile: real; data: real" in first and "SYNTHETIC" not in first
    # every number from the result files: the means over both seeds, each over both folds' images
    assert "**ceph** (6 images, each tested once over the folds; 2 seeds)" in first
    assert ("`imagenet>spine>ceph` (9.20 px) against `imagenet>ceph (steps of imagenet>spine>ceph)`, the target "
            "alone for as many optimiser steps in one schedule: -0.20 px [95 % CI -0.20, -0.20]") in first
    assert "The spine source it starts from scored 0.30 x its mean shape on its own test images (learned its task)" in first
    assert "Against `imagenet>ceph` (as many steps on ceph): +0.40 px" in first
    assert "ImageNet against random weights (`imagenet>ceph` vs `scratch>ceph`): -2.10 px" in first
    assert "**spine**" not in first  # a source stage, not a target
    assert "Human limit" not in first  # the ceph data the runs read are not on this machine
    assert "synthetic phantoms" in phantoms and "profile **ci**" in phantoms
    assert book.front_page_markdown(real, real).count("### ") == 1  # the real study's own book: its answer only


def test_the_front_page_gives_the_human_limit_from_the_readers(tmp_path: Path) -> None:
    ceph_root = SHARED_DATA / "hamedan_university_dataset"
    if not ceph_root.is_dir():
        pytest.skip(f"real samples not found at {ceph_root} (set XLM_SHARED_DATA)")
    demo = load_study(write_fake_study(tmp_path / "results" / "demo"))
    real = load_study(write_fake_real_study(tmp_path / "results" / "real", ceph_root))
    human = human_limit_from_dataset(ceph_root, ids=sum(CEPH_FOLDS, []), dataset="ceph")  # every tested image
    assert (f"Human limit: one reader against the mean of both, {human[0]['mre']:.2f} px on the same images"
            in book.front_page_markdown(demo, real))


def test_the_book_reads_its_study_and_the_real_one_beside_it(tmp_path: Path) -> None:
    """``collect_generated`` loads the study it builds from and ``results/real`` beside it (the
    study itself when it is the real one; none when absent): the front page it writes is
    :func:`book.front_page_markdown` of those."""
    demo_dir = write_fake_study(tmp_path / "results" / "demo")
    real_dir = write_fake_real_study(tmp_path / "results" / "real", tmp_path / "gone" / "hamedan_university_dataset")
    demo, real = load_study(demo_dir), load_study(real_dir)
    summary = tmp_path / "book" / "generated" / "summary.md"
    book.collect_generated(demo_dir, tmp_path / "book")
    assert summary.read_text() == book.front_page_markdown(demo, real)
    book.collect_generated(real_dir, tmp_path / "book")
    assert summary.read_text() == book.front_page_markdown(real, real)
    (real_dir / "study.json").unlink()
    book.collect_generated(demo_dir, tmp_path / "book")
    assert summary.read_text() == book.front_page_markdown(demo, None)


def test_without_real_results_the_front_page_says_where_the_answer_is_in_one_line(tmp_path: Path) -> None:
    demo = load_study(write_fake_study(tmp_path / "results" / "demo"))
    first, rest = book.front_page_markdown(demo, None).split("\n", 1)
    assert first == book.REAL_ABSENT and "{doc}`/book/real`" in first
    for command in ("xlm data fetch real DIR", "xlm study run real --data-root DIR", "xlm book build"):
        assert command in first
    assert rest.lstrip().startswith("*Generated from `fake` (profile **ci**")
