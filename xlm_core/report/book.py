"""Build the Jupyter Book from a study's executed notebooks (nothing is executed at build time).

``collect_generated`` copies ``results/<study>/notebooks/*.ipynb`` (the aggregation notebooks)
and ``results/<study>/runs/*/run.ipynb`` (one per run) into ``book/generated/`` and writes the
generated includes (the introduction's answer, the appendix's run table); ``build_book`` then
runs ``jupyter-book build`` with warnings as errors into ``_build/html``.

Notebooks are executed by :func:`xlm_core.study.notebooks.execute_notebook`, the one way a
py:percent notebook is run (jupytext -> kernelspec -> papermill into a separate file, renamed).

MathJax: the book has no mathematics, and Jupyter Book would load MathJax from a CDN, so
``_config.yml`` sets ``mathjax_path: ""`` and :func:`check_offline_html` verifies that no page
of the built HTML loads a script, stylesheet or image from another host.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from xlm_core import XLMError
from xlm_core.io import atomic_write_text
from xlm_core.report.display import DASH, format_cell
from xlm_core.report.prose import real_answer_markdown, summary_markdown
from xlm_core.report.results import (
    StudyInfo,
    chain_start,
    collect_runs,
    load_study,
    run_chain,
    run_dir,
)
from xlm_core.study.notebooks import execute_notebook
from xlm_core.study.runner import AGGREGATION_NOTEBOOKS

REPO = Path(__file__).resolve().parents[2]


def execute_aggregation_notebooks(results_dir: str | Path, study: str,
                                  names: tuple[str, ...] = AGGREGATION_NOTEBOOKS,
                                  notebooks_dir: str | Path = REPO / "notebooks") -> dict[str, Path]:
    """Execute ``notebooks/<name>.py`` for each name with ``results_dir`` and ``study`` into
    ``results_dir/notebooks/<name>.ipynb``. ``results_dir`` is passed absolute, so the
    notebooks also re-execute (nbval) from any working directory."""
    results_dir = Path(results_dir).resolve()
    done = {}
    for name in names:
        done[name] = execute_notebook(
            Path(notebooks_dir) / f"{name}.py", results_dir / "notebooks" / f"{name}.ipynb",
            {"results_dir": str(results_dir), "study": study}, cwd=REPO,
        )
    return done


# --------------------------------------------------------------------------- collecting


def run_title(run: dict, start: str | None = None) -> str:
    """A run page's title.

    Args:
        run: one run of ``study.json``.
        start: what its chain's first stage really started from (``scratch``, ``imagenet``;
            :func:`xlm_core.report.chain_start`); None keeps the profile's token.

    Returns:
        e.g. ``Run <id>: transfer scratch>hand -> head, seed 0``.
    """
    dataset = run.get("dataset") or (run.get("config") or {}).get("dataset")
    arch = f"{run.get('arch')}/{run.get('encoder')}"
    if run.get("kind") == "backbone":
        what = f"backbone {arch} on {dataset}, fold {run.get('fold')}"
    else:
        what = f"transfer {run_chain(run, start)} -> {dataset}"
        if run.get("fold") is not None:
            what += f", fold {run['fold']}/{run.get('folds')}"
    return f"Run {run['run_id']}: {what}, seed {run.get('seed', 0)}"


def relative_paths(text: str, replacements: dict[str, str]) -> str:
    """Replace the absolute folders of the machine that built the book by portable names.

    Args:
        text: a cell's source or output text.
        replacements: absolute folder -> its name in the book (e.g. the results folder ->
            ``results/demo``); longer folders are replaced first.

    Returns:
        The text without those absolute paths.
    """
    for folder in sorted(replacements, key=len, reverse=True):
        text = text.replace(folder, replacements[folder])
    return text


def _relativise(nb, replacements: dict[str, str]) -> None:
    for cell in nb.cells:
        cell.source = relative_paths(cell.source, replacements)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = relative_paths(output["text"], replacements)
            for mime, value in (output.get("data") or {}).items():
                if mime.startswith("text/") and isinstance(value, str):
                    output["data"][mime] = relative_paths(value, replacements)


RERUN_TAG = "rerun-snippet"


def papermill_parameters(nb) -> dict:
    """The parameters papermill injected into an executed notebook (its
    ``metadata.papermill.parameters``, the run record); ``{}`` when it holds none."""
    params = (nb.metadata.get("papermill") or {}).get("parameters")
    return dict(params) if isinstance(params, dict) else {}


def rerun_markdown(source: str, parameters: dict, out_name: str, study: str | None = None,
                   overrides: dict | None = None) -> str:
    """A Markdown cell telling a reader how to re-execute a book page with papermill.

    Args:
        source: the page's jupytext source, relative to the checkout (``notebooks/<name>.py``).
        parameters: the parameters the page was executed with (:func:`papermill_parameters`),
            paths already portable (:func:`relative_paths`); each is passed with ``-y NAME: JSON``
            (JSON is YAML), quoted for a POSIX shell.
        out_name: the executed copy's file stem (written under ``/tmp``).
        study: the study profile whose ``xlm study run`` makes the data and earlier runs the
            parameters point to; None for no such step.
        overrides: single fields passed after the record (``-p NAME VALUE``: for a run notebook a
            field given alone wins over its value in ``config``).

    Returns:
        A MyST admonition with one bash block.
    """
    stem = Path(source).stem
    args = [f"-y {shlex.quote(f'{name}: {json.dumps(value)}')}" for name, value in parameters.items()]
    args += [f"-p {shlex.quote(str(name))} {shlex.quote(str(value))}"
             for name, value in (overrides or {}).items()]
    # papermill reads the converted source and writes the executed copy beside it, never in place
    lines = [f".venv/bin/jupytext --to ipynb {source} -o /tmp/{stem}-source.ipynb",
             f".venv/bin/papermill /tmp/{stem}-source.ipynb /tmp/{out_name}.ipynb -k python3"
             + (" \\" if args else "")]
    for i, arg in enumerate(args):
        lines.append(f"    {arg}" + (" \\" if i < len(args) - 1 else ""))
    before = "From a checkout (`make venv`)"
    if study:
        before += (f", after `xlm study run {study}` (which writes the data and any earlier runs "
                   "these parameters name)")
    before += (": the parameters below are the ones this page ran with, copied from its run record."
               if parameters else ".")
    text = [":::{admonition} Re-run this page with papermill", ":class: tip", "", before, "",
            "```bash", *lines, "```"]
    if overrides:
        given = ", ".join(f"`{name}`" for name in overrides)
        verb = "wins" if len(overrides) == 1 else "win"
        text += ["", f"{given}, given alone, {verb} over the record: the copy writes a new folder "
                 "and trains again instead of reporting the finished run."]
    text += ["", "The launch buttons at the top of the page (the rocket) open this notebook on "
             "Binder or Colab.", ":::"]
    return "\n".join(text)


def copy_notebook(src: Path, dst: Path, title: str | None = None,
                  replacements: dict[str, str] | None = None, rerun: dict | None = None) -> Path:
    """Copy an executed notebook into the book, folding papermill's injected parameters cell
    (tag ``hide-input``: shown on a click, as the notebooks' own parameters cell).

    Args:
        src: the executed notebook.
        dst: where the book reads it.
        title: replaces the first Markdown heading (run pages would otherwise share one title).
        replacements: absolute folder -> portable name, applied to sources and text outputs
            (:func:`relative_paths`), so no page prints the building machine's paths.
        rerun: keyword arguments of :func:`rerun_markdown` but ``parameters`` (taken from the
            notebook's own record, made portable with ``replacements``): a re-run snippet is
            inserted after the title cell (tag ``rerun-snippet``); None inserts none.

    Returns:
        ``dst``.
    """
    import nbformat

    try:
        nb = nbformat.read(src, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for a bad file
        raise XLMError(f"{src}: not a readable notebook ({type(exc).__name__}: {exc})") from None
    if title is not None:
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
                _, _, rest = cell.source.lstrip().partition("\n")
                cell.source = f"# {title}\n{rest}" if rest else f"# {title}"
                break
    if replacements:
        _relativise(nb, replacements)
    if rerun is not None:
        record = papermill_parameters(nb)
        if replacements:  # the record as JSON, so nested paths (config.root) are made portable too
            record = json.loads(relative_paths(json.dumps(record), replacements))
        # a fixed id: a rebuilt page keeps its bytes, so the incremental build skips it
        cell = nbformat.v4.new_markdown_cell(rerun_markdown(parameters=record, **rerun),
                                             metadata={"tags": [RERUN_TAG]}, id=RERUN_TAG)
        at = next((i + 1 for i, c in enumerate(nb.cells)
                   if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")), 0)
        nb.cells.insert(at, cell)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
    atomic_write_text(dst, nbformat.writes(nb))
    return dst


#: the real-x-ray chapter: its study and its notebook (``results/<REAL_STUDY>/notebooks/real.ipynb``)
REAL_STUDY = "real"
#: how to make the real study's results, for a build without them
REAL_COMMANDS = ("`xlm data fetch real DIR` (the two public sets, at the commits their descriptors "
                 "pin), `xlm study run real --data-root DIR` (`--dry-run` first projects its cost), "
                 "then `xlm book build` again")
REAL_HOW = f"*No results of the real-x-ray study in this build.* Make them with {REAL_COMMANDS}."
#: the front page's one line without them
REAL_ABSENT = (f"*The answer on real x-rays is not in this build:* it is the chapter "
               f"{{doc}}`/book/real`, made by {REAL_COMMANDS}.")


def real_results_dir(results_dir: Path) -> Path:
    """``results/real`` beside ``results_dir`` (``results_dir`` itself when it is the real study)."""
    return results_dir if results_dir.name == REAL_STUDY else results_dir.parent / REAL_STUDY


def _real_chapter(results_dir: Path, generated: Path, replacements: dict[str, str]) -> Path:
    """``generated/real.ipynb`` from the real study's executed chapter beside ``results_dir``
    (``results/real``), or ``generated/real.md``: one line saying how to make it."""
    real_dir = real_results_dir(results_dir)
    src = real_dir / "notebooks" / "real.ipynb"
    if src.is_file():
        replacements = {**replacements, str(real_dir.resolve()): f"results/{REAL_STUDY}"}
        return copy_notebook(src, generated / "real.ipynb", replacements=replacements,
                             rerun={"source": "notebooks/real.py", "out_name": "real", "study": REAL_STUDY})
    path = generated / "real.md"
    atomic_write_text(path, f"# Results on real x-rays\n\n{REAL_HOW}\n")
    return path


def front_page_markdown(study: StudyInfo, real: StudyInfo | None) -> str:
    """The introduction's answer (``generated/summary.md``): the real x-rays' first when there
    is a real study (``real``: ``results/real`` beside ``study``, :func:`real_answer_markdown`),
    then this build's ``study``, labelled (:func:`summary_markdown`); without one (``real`` None),
    one line saying where that answer is. ``real`` may be ``study`` itself (the real study's
    own book: its answer only)."""
    if real is None:
        return f"{REAL_ABSENT}\n\n{summary_markdown(study)}"
    parts = ["### On real x-rays", "", real_answer_markdown(real)]
    if real.results_dir.resolve() != study.results_dir.resolve():
        what = ("On synthetic phantoms" if study.data_source == "synthetic"
                else f"On the {study.data_source} data")
        parts += ["", f"### {what} (the `{study.profile}` study)", "", summary_markdown(study)]
    return "\n".join(parts)


def _placeholder(name: str, study: str, why: str) -> str:
    return f"# {name.capitalize()}\n\nNot produced by study `{study}`: {why}\n"


def runs_table_markdown(study: StudyInfo) -> str:
    """The appendix's run list: one Markdown row per run, linked to its page when it finished.

    Args:
        study: the study (:func:`~xlm_core.report.results.load_study`).

    Returns:
        A Markdown table: run (a link to ``generated/runs/<id>`` for a finished run), kind,
        dataset, arch, encoder, loss, chain (its real start first: ``scratch`` or ``imagenet``),
        fold, seed, test MRE (clean, with unit), status.
    """
    import pandas as pd

    try:
        runs = collect_runs(study)
    except XLMError as exc:
        return f"No run list: {exc}\n"

    def cell(value: object) -> str:
        return format_cell(value)

    lines = ["| run | kind | dataset | arch | encoder | loss | chain | fold | seed | test MRE (clean) | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in runs.iterrows():
        mre = r.get("test_mre")
        mre_text = DASH if format_cell(mre) == DASH else f"{mre:.3f} {r.get('unit')}"
        fold = DASH if pd.isna(r["fold"]) else int(r["fold"])
        page = run_dir(study.results_dir, r["run_id"])
        run = (f"{{doc}}`{r['run_id']} </book/generated/runs/{r['run_id']}>`"
               if (page / "run.ipynb").is_file() and r["status"] == "done" else f"`{r['run_id']}`")
        chain = r["chain"]
        lines.append(f"| {run} | {r['kind']} | {r['dataset']} | {cell(r['arch'])} | {cell(r['encoder'])} | "
                     f"{cell(r.get('loss'))} | {chain} | {fold} | {cell(r['seed'])} | {mre_text} | {r['status']} |")
    lines.append("")
    lines.append(f"{DASH}: no value (a run without folds, or one that has not finished). The "
                 "chain's first token is what its first stage started from, as the runs recorded it "
                 "(`scratch`: random initialisation; `imagenet`: ImageNet weights loaded).")
    return "\n".join(lines) + "\n"


def collect_generated(results_dir: str | Path, book_dir: str | Path = REPO / "book") -> list[Path]:
    """Fill ``book_dir/generated`` from ``results_dir`` (emptied first); return the files written.

    - ``<name>.ipynb`` for each aggregation notebook the study executed; a Markdown placeholder
      page ``<name>.md`` saying so when one is absent (the table of contents stays whole);
    - ``runs/<run_id>.ipynb`` for each finished run's notebook (a failed run is listed in the
      run table with its status, not shown);
    - ``summary.md`` (the introduction's answer) and ``runs_table.md`` (the appendix's list).

    Loads the study, and the real study beside it (``results/real``), once: the pages are made
    from the loaded :class:`StudyInfo`.
    """
    results_dir = Path(results_dir)
    study = load_study(results_dir)
    final = Path(book_dir) / "generated"
    # written into a fresh folder, then synced onto book/generated: an unchanged page keeps its
    # file (and time stamp), so a second build re-reads only what changed (Sphinx is incremental)
    staging = Path(book_dir) / ".generated.new"
    if staging.exists():
        shutil.rmtree(staging)
    generated = staging
    (generated / "runs").mkdir(parents=True)
    written = []
    # results/<name> and the checkout, as the reader's own copy would have them
    replacements = {str(results_dir.resolve()): f"results/{results_dir.name}", str(REPO): "."}
    if str(results_dir) != str(results_dir.resolve()):
        replacements[str(results_dir)] = f"results/{results_dir.name}"
    for name in AGGREGATION_NOTEBOOKS:
        src = results_dir / "notebooks" / f"{name}.ipynb"
        if src.is_file():
            written.append(copy_notebook(src, generated / f"{name}.ipynb", replacements=replacements,
                                         rerun={"source": f"notebooks/{name}.py", "out_name": name,
                                                "study": study.name}))
        else:
            path = generated / f"{name}.md"
            atomic_write_text(path, _placeholder(name, study.name, f"{src} is absent."))
            written.append(path)
    written.append(_real_chapter(results_dir, generated, replacements))
    n_runs = 0
    for run in study.runs:
        folder = run_dir(results_dir, run["run_id"])
        src = folder / "run.ipynb"
        if src.is_file() and (folder / "metrics.json").is_file():  # finished runs only
            written.append(copy_notebook(src, generated / "runs" / f"{run['run_id']}.ipynb",
                                         title=run_title(run, chain_start(study, run)),
                                         replacements=replacements,
                                         rerun={"source": "notebooks/train_evaluate.py",
                                                "out_name": f"run-{run['run_id']}",
                                                "study": study.name,
                                                "overrides": {"out": f"/tmp/run-{run['run_id']}"}}))
            n_runs += 1
    if n_runs == 0:  # a glob matching nothing is a Sphinx warning, so an error here
        path = generated / "runs" / "none.md"
        atomic_write_text(path, "# No run notebooks\n\nThis study has no executed run notebook.\n")
        written.append(path)
    # the real study beside this one (results/real; this one when it is the real study), if run
    real_dir = real_results_dir(results_dir)
    real = (study if real_dir.resolve() == results_dir.resolve()
            else load_study(real_dir) if (real_dir / "study.json").is_file() else None)
    for name, text in (("summary.md", front_page_markdown(study, real)),
                       ("runs_table.md", runs_table_markdown(study))):
        atomic_write_text(generated / name, text)
        written.append(generated / name)
    sync_tree(staging, final)
    shutil.rmtree(staging)
    return [final / p.relative_to(staging) for p in written]


def sync_tree(source: Path, dest: Path) -> None:
    """Make ``dest`` hold exactly the files of ``source``: a file whose bytes are unchanged is
    left as it is (same time stamp), a changed or new one is replaced, one absent from
    ``source`` is deleted."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
    for rel in sorted(wanted):
        src, dst = source / rel, dest / rel
        if dst.is_file() and dst.read_bytes() == src.read_bytes():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    for path in sorted(dest.rglob("*"), reverse=True):  # files before their folders
        rel = path.relative_to(dest)
        if path.is_file() and rel not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


# --------------------------------------------------------------------------- building


_EXTERNAL = re.compile(
    r"""<(?:script|img|iframe)[^>]+src=["'](?:https?:)?//|<link[^>]+href=["'](?:https?:)?//[^"']+["'][^>]*rel=["']?stylesheet"""
    r"""|<link[^>]+rel=["']?stylesheet["']?[^>]+href=["'](?:https?:)?//""",
    re.IGNORECASE,
)


def check_offline_html(html_dir: str | Path) -> list[str]:
    """Pages of the built book that load a script, stylesheet, image or frame from another
    host (``http(s)://`` or ``//``): ``["page.html: <tag...>", ...]``; empty when offline-clean."""
    problems = []
    for page in sorted(Path(html_dir).rglob("*.html")):
        text = page.read_text(errors="replace")
        for match in _EXTERNAL.finditer(text):
            end = text.find(">", match.start())
            problems.append(f"{page.relative_to(html_dir)}: {text[match.start():end + 1][:160]}")
    return problems


def jupyter_book_command() -> list[str]:
    """``jupyter-book`` of this Python environment (beside ``sys.executable``)."""
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found is None:
        raise XLMError("jupyter-book is not installed in this environment (pip install -r requirements.txt)")
    return [found]


def build_book(results_dir: str | Path, repo: str | Path = REPO, builder: str = "html",
               quiet: bool = True) -> Path:
    """Collect the study's notebooks into ``repo/book/generated`` and build ``repo/_build/html``.

    Warnings are errors (``--warningiserror``); the HTML is checked to load nothing from another
    host. Returns the HTML folder. Raises XLMError with the tail of jupyter-book's output.
    """
    repo = Path(repo)
    for name in ("_config.yml", "_toc.yml"):
        if not (repo / name).is_file():
            raise XLMError(f"{repo / name}: missing (the book's configuration)")
    collect_generated(results_dir, repo / "book")
    cmd = jupyter_book_command() + ["build", str(repo), "--builder", builder, "--warningiserror",
                                    "--keep-going"]
    if quiet:
        cmd.append("--quiet")
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise XLMError(f"jupyter-book build of {repo} failed (exit {proc.returncode}):\n{tail}")
    html = repo / "_build" / "html"
    if builder == "html":
        external = check_offline_html(html)
        if external:
            raise XLMError(f"{html}: pages load files from other hosts (the book must open offline):\n"
                           + "\n".join(external[:10]))
    return html


def study_results_dir(study: str, results_root: str | Path = REPO / "results") -> Path:
    """``results/<study>`` for a profile name, or the folder itself when given a path."""
    path = Path(study)
    if (path / "study.json").is_file():
        return path
    candidate = Path(results_root) / study
    if not (candidate / "study.json").is_file():
        raise XLMError(f"{candidate / 'study.json'}: not found; run `xlm study run {study}` first")
    return candidate


def describe(results_dir: str | Path, repo: str | Path = REPO) -> str:
    """One line for the command line: which study (loaded from ``results_dir``), how many
    notebooks went into the book."""
    generated = Path(repo) / "book" / "generated"
    n_nb = len(list(generated.glob("*.ipynb")))
    n_runs = len(list((generated / "runs").glob("*.ipynb")))
    study = load_study(results_dir)
    return (f"book built from {results_dir} (profile {study.profile}): "
            f"{n_nb} aggregation notebooks, {n_runs} run notebooks")
