"""``xlm book build [--study demo]``: the study's executed notebooks -> ``_build/html``."""

from __future__ import annotations

import argparse

from xlm_core.report import book


def _build(args: argparse.Namespace) -> int:
    results_dir = book.study_results_dir(args.study, args.results_root)
    html = book.build_book(results_dir, quiet=not args.verbose)
    print(book.describe(results_dir))
    print(f"open {html / 'index.html'}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("book", help="build the Jupyter Book from a study's results")
    sub = parser.add_subparsers(dest="book_command", required=True)
    build = sub.add_parser(
        "build",
        help="copy results/<study>/notebooks and the run notebooks into book/generated, "
        "then build _build/html (warnings are errors; nothing is executed)",
    )
    build.add_argument("--study", default="demo",
                       help="study profile name (results/<study>) or a results folder (default: demo)")
    build.add_argument("--results", "--results-root", dest="results_root", default="results", metavar="DIR",
                       help="folder holding <study>/, as for xlm study run (default: results, under "
                            "the current folder)")
    build.add_argument("--verbose", action="store_true", help="show jupyter-book's output")
    build.set_defaults(func=_build)
