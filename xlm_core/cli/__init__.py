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
        importlib.import_module(f"xlm_core.cli.{area}").register(sub)
    return parser


#: printed on Ctrl-C: every long command (train, study run) resumes from where it stopped
INTERRUPTED = "xlm: interrupted; run the same command again to resume"


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the ``xlm`` command line.

    A closed pipe (``xlm evaluate RUN | head -5``) ends the command quietly; Ctrl-C prints
    one line with the resume hint instead of a traceback.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 success, 1 an error (printed as one line), 130 interrupted,
        141 the reader of stdout went away.
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        args = build_parser().parse_args(argv)
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return status
    except XLMError as exc:
        print(f"xlm: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{INTERRUPTED}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
