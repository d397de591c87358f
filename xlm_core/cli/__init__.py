"""The xlm command: landmark detection in x-ray images (datasets, training, study, book).

Every sub-command module exposes ``register(subparsers)``, which adds its parsers and
sets ``func`` on them; ``func(args) -> int`` is the exit status. Logic lives in
``xlm_core`` modules so the notebooks call the same functions.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from xlm_core import XLMError

# module name under xlm_core.cli -> registers these top-level commands
_AREAS = ["data", "score", "train", "study", "book"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for area in _AREAS:
        try:
            module = importlib.import_module(f"xlm_core.cli.{area}")
        except ModuleNotFoundError as exc:  # an area not built yet
            if exc.name != f"xlm_core.cli.{area}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except XLMError as exc:
        print(f"xlm: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xlm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
