"""Executing a notebook with papermill: py:percent source in, executed .ipynb out, atomically.

papermill cannot read jupytext py:percent files, and executing a paired notebook in place
would copy the injected parameters back into the source; so the source is converted into
a temporary .ipynb, executed into a temporary file beside the destination, and renamed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from xlm_core import XLMError

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


class NotebookFailed(Exception):
    """A notebook raised while executing. ``notebook``: the executed notebook (with the error)."""

    def __init__(self, message: str, notebook: Path | None):
        super().__init__(message)
        self.notebook = notebook


def execute_notebook(
    source: str | Path,
    output: str | Path,
    parameters: dict,
    cwd: str | Path | None = None,
    kernel_name: str = "python3",
    timeout_s: float | None = None,
) -> Path:
    """Execute ``source`` (py:percent via jupytext, or .ipynb) into ``output`` with ``parameters``.

    ``output`` appears whole (executed to a temporary, then renamed), on failure too: then
    it holds the traceback, and :class:`NotebookFailed` is raised naming it.
    """
    import jupytext
    import papermill

    source, output = Path(source), Path(output)
    if not source.is_file():
        raise XLMError(f"notebook {source} not found")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xlm-nb-") as tmp:
        nb = jupytext.read(source)
        nb.metadata["kernelspec"] = dict(KERNELSPEC)
        nb_in = Path(tmp) / f"{source.stem}.ipynb"
        jupytext.write(nb, nb_in, fmt="ipynb")
        fd, partial = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=".ipynb", dir=output.parent)
        os.close(fd)
        os.chmod(partial, 0o644)  # mkstemp makes 0600; an executed notebook is for reading
        try:
            papermill.execute_notebook(
                str(nb_in),
                partial,
                parameters=parameters,
                kernel_name=kernel_name,
                cwd=str(cwd) if cwd is not None else None,
                progress_bar=False,
                log_output=False,
                execution_timeout=timeout_s,
                # the kernel's start-up warnings (e.g. "running over TCP without encryption")
                # would interleave with the progress lines
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
                # a graceful shutdown after Ctrl-C asks a kernel that is still inside a cell to
                # close its sockets, and it prints a ZMQ traceback on our terminal; the notebook
                # is written by then, so the kernel is simply stopped
                shutdown_kernel="immediate",
            )
        except papermill.PapermillExecutionError as exc:
            _keep(partial, output)
            where = f"cell {exc.exec_count}" if exc.exec_count is not None else "a cell"
            raise NotebookFailed(f"{where}: {exc.ename}: {exc.evalue}".strip(), output) from None
        except BaseException as exc:
            kept = _keep(partial, output)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise NotebookFailed(f"{type(exc).__name__}: {exc}", output if kept else None) from None
        _keep(partial, output)
    return output


def _keep(partial: str, output: Path) -> bool:
    """Rename the executed temporary onto ``output`` if it holds a notebook; else drop it."""
    p = Path(partial)
    if p.is_file() and p.stat().st_size > 0:
        os.replace(p, output)
        return True
    p.unlink(missing_ok=True)
    return False
