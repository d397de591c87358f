"""The book: collecting a study's notebooks, building the HTML offline, and reading it in Chromium.

``book_study`` (session-scoped, shared with tests/test_notebooks_nbval.py through a marker file
in pytest's base temp folder, so the tiny study runs once per session) is the ``ci`` profile run
by the study runner: ``xlm study run ci``. Set ``XLM_BOOK_STUDY=fake`` to use a hand-made results
folder instead (no training: tests/test_report.py's ``write_fake_study`` plus the aggregation
notebooks that need no dataset), or ``XLM_BOOK_STUDY=/path/results/<study>`` to reuse a study
already run (the notebooks' re-execution by nbval rewrites its table CSVs, nothing else).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import nbformat
import pytest

from xlm_core import XLMError
from xlm_core.report import book

sys.path.insert(0, str(Path(__file__).parent))
from test_report import write_fake_study

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FAKE_NOTEBOOKS = ("backbones", "transfer", "sota", "beyond")  # those that need no dataset
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _study_mode() -> str:
    return os.environ.get("XLM_BOOK_STUDY", "ci")


@pytest.fixture(scope="session")
def book_study(tmp_path_factory) -> Path:
    """``results/<study>`` of a tiny study with executed run and aggregation notebooks."""
    if (Path(_study_mode()) / "study.json").is_file():  # a study already run (development)
        return Path(_study_mode())
    base = tmp_path_factory.getbasetemp() / f"book_study_{_study_mode()}"
    ready = base / "READY"
    if ready.is_file():
        return Path(ready.read_text())
    base.mkdir(exist_ok=True)
    if _study_mode() == "fake":
        results = write_fake_study(base / "results" / "fake")
        book.execute_aggregation_notebooks(results, "fake", names=FAKE_NOTEBOOKS)
    else:
        env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg",
                   XLM_CACHE=str(base / "cache"))
        cmd = [sys.executable, "-c", "import sys; from xlm_core.cli import main; sys.exit(main())",
               "study", "run", "ci", "--results", str(base / "results")]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False)
        log = (proc.stdout + proc.stderr).strip().splitlines()
        assert proc.returncode == 0, "xlm study run ci failed:\n" + "\n".join(log[-40:])
        results = base / "results" / "ci"
    ready.write_text(str(results))
    return results


def book_repo(tmp: Path) -> Path:
    """A copy of the book's sources (config, table of contents, chapters) to build in ``tmp``."""
    repo = tmp / "repo"
    (repo / "book").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, repo / name)
    for md in (REPO / "book").glob("*.md"):
        shutil.copy2(md, repo / "book" / md.name)
    return repo


# --------------------------------------------------------------------------- fast


def test_collect_generated_fills_the_book(tmp_path: Path) -> None:
    results = write_fake_study(tmp_path / "results" / "fake")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("results_dir = 'x'", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_markdown_cell("# Table 2"),
    ])
    (results / "notebooks").mkdir()
    nbformat.write(nb, results / "notebooks" / "transfer.ipynb")
    run_nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"root = '{results}/data/hand'\nout = '{results}/runs/bb-unet-f0'",
                                  metadata={"tags": ["injected-parameters"]},
                                  outputs=[nbformat.v4.new_output("stream", name="stdout",
                                                                  text=f"wrote {results}/runs/x\n")]),
        nbformat.v4.new_markdown_cell("# Table 2"),
    ])
    nbformat.write(run_nb, results / "runs" / "bb-unet-f0" / "run.ipynb")
    book_dir = tmp_path / "book"
    (book_dir / "generated").mkdir(parents=True)
    (book_dir / "generated" / "stale.ipynb").write_text("{}")
    book.collect_generated(results, book_dir)
    generated = book_dir / "generated"
    assert not (generated / "stale.ipynb").exists()  # emptied first
    copied = nbformat.read(generated / "transfer.ipynb", as_version=4)
    assert "hide-input" in copied.cells[0].metadata["tags"]
    run_nb = nbformat.read(generated / "runs" / "bb-unet-f0.ipynb", as_version=4)
    assert run_nb.cells[1].source == "# Run bb-unet-f0: backbone unet/vgg19 on hand, fold 0, seed 0"
    assert not (generated / "runs" / "bb-unet-f1.ipynb").exists()  # no run.ipynb there
    page = (generated / "runs" / "bb-unet-f0.ipynb").read_text()
    assert str(tmp_path) not in page  # no absolute path of the building machine
    assert "results/fake/data/hand" in page and "wrote results/fake/runs/x" in page
    for name in ("datasets", "pipeline", "backbones", "sota", "beyond"):
        assert "Not produced by study `fake`" in (generated / f"{name}.md").read_text()
    assert "profile **ci**" in (generated / "summary.md").read_text()
    table = (generated / "runs_table.md").read_text()
    # a finished run with a page links to it; one without run.ipynb does not
    assert "{doc}`bb-unet-f0 </book/generated/runs/bb-unet-f0>`" in table
    assert "`bb-unet-f1`" in table and "runs/bb-unet-f1>" not in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 4 + 30  # header, 4 backbone runs, 30 transfer runs
    assert rows[0].startswith("| run | kind | dataset | arch | encoder | loss | chain | fold | seed |")
    assert "| unet | vgg19 |" in table and "nan" not in table.lower() and "None" not in table


def test_check_offline_html_finds_external_assets(tmp_path: Path) -> None:
    (tmp_path / "ok.html").write_text('<script src="_static/a.js"></script><img src="x.png">')
    (tmp_path / "bad.html").write_text(
        '<script async src="https://cdn.example.org/mathjax.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/a.css">'
    )
    problems = book.check_offline_html(tmp_path)
    assert len(problems) == 2 and all(p.startswith("bad.html") for p in problems)


def test_cli_names_a_missing_study(tmp_path: Path, capsys) -> None:
    from xlm_core.cli import main

    assert main(["book", "build", "--study", "nope", "--results-root", str(tmp_path)]) == 1
    assert "nope/study.json: not found" in capsys.readouterr().err


def test_execute_notebook_names_the_failing_cell(tmp_path: Path) -> None:
    with pytest.raises(XLMError, match="not found"):
        book.execute_notebook(tmp_path / "absent.py", tmp_path / "out.ipynb", {})


# --------------------------------------------------------------------------- the built book


def _serve(directory: Path):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def built_book(book_study: Path, tmp_path_factory) -> Path:
    repo = book_repo(tmp_path_factory.mktemp("book"))
    html = book.build_book(book_study, repo=repo)  # warnings are errors; offline-checked
    return html


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
@pytest.mark.parametrize(
    ("page", "heading", "csv"),
    [
        ("book/generated/backbones.html", "Table 1", "table1_backbones.csv"),
        ("book/generated/transfer.html", "Table 2", "table2_transfer.csv"),
        ("book/generated/sota.html", "Table 3", "table3_sota.csv"),
    ],
)
def test_table_pages_in_chromium(built_book: Path, book_study: Path, tmp_path: Path,
                                 page: str, heading: str, csv: str) -> None:
    assert (book_study / csv).is_file()
    server, url = _serve(built_book)
    try:
        proc = _chromium(tmp_path, "--dump-dom", f"{url}/{page}")
        dom = proc.stdout
        assert proc.returncode == 0 and "<html" in dom, proc.stderr[-2000:]
        assert heading in dom
        assert dom.count("<table") >= 1 and "<td" in dom
        assert "profile: " in dom and ("synthetic" in dom or "real" in dom)  # says what made it
        srcs = re.findall(r'<img[^>]+src="([^"]+\.png)"', dom)
        assert srcs, f"{page}: no figure"
        for src in srcs:
            absolute = urllib.request.urljoin(f"{url}/{page}", src)
            with urllib.request.urlopen(absolute, timeout=10) as resp:
                data = resp.read()
            assert data.startswith(PNG_SIGNATURE) and len(data) > 2000, f"{absolute}: not a PNG figure"
        shot = tmp_path / "page.png"
        proc = _chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", f"{url}/{page}")
        assert shot.is_file() and shot.stat().st_size > 20000, proc.stderr[-2000:]
        from PIL import Image, ImageStat

        assert max(ImageStat.Stat(Image.open(shot).convert("L")).stddev) > 10  # not a blank page
    finally:
        server.shutdown()


@pytest.mark.slow
def test_intro_gives_the_generated_answer(built_book: Path, book_study: Path) -> None:
    intro = (built_book / "book" / "intro.html").read_text()
    meta = json.loads((book_study / "study.json").read_text())
    assert f"profile <strong>{meta['profile']}</strong>" in intro
    assert "synthetic" in intro.lower()
    runs = list((built_book / "book" / "generated" / "runs").glob("*.html"))
    assert runs, "appendix: no run page"


def test_sync_tree_keeps_unchanged_files_untouched_and_mirrors_the_rest(tmp_path):
    """A second book build re-reads only changed pages: collect_generated syncs onto
    book/generated instead of rewriting it, so an unchanged page keeps its time stamp."""
    import os

    from xlm_core.report.book import sync_tree

    dest, source = tmp_path / "generated", tmp_path / "new"
    (dest / "runs").mkdir(parents=True)
    (dest / "same.md").write_text("same")
    (dest / "changed.md").write_text("old")
    (dest / "runs" / "gone.ipynb").write_text("{}")
    os.utime(dest / "same.md", (1_000_000, 1_000_000))
    (source / "runs").mkdir(parents=True)
    (source / "same.md").write_text("same")
    (source / "changed.md").write_text("new")
    (source / "runs" / "new.ipynb").write_text("{}")
    sync_tree(source, dest)
    assert (dest / "same.md").stat().st_mtime == 1_000_000
    assert (dest / "changed.md").read_text() == "new"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "changed.md", "runs/new.ipynb", "same.md"]
