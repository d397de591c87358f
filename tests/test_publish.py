"""Publishing: the re-run snippet the book build writes into each notebook page, the launch
buttons' configuration, and the citation and licence files agreeing with it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import nbformat
import yaml

from xlm_core.report import book

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
    owner, name = url.rstrip("/").split("/")[-2:]
    pages = f"https://{owner.lower()}.github.io/{name}/"
    head = "\n".join((REPO / "README.md").read_text().splitlines()[:15])
    assert pages in head, f"README.md: its first screen should link the book at {pages}"
    intro = (REPO / "book" / "intro.md").read_text()
    assert url in intro and "2403.01470" in intro, "book/intro.md: the citation block"


def test_the_licence_is_the_one_pyproject_declares() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert 'license = {text = "MIT"}' in (REPO / "pyproject.toml").read_text()
