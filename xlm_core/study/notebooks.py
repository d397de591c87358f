"""Executing a notebook with papermill: py:percent source in, executed .ipynb out, atomically.

papermill cannot read jupytext py:percent files, and executing a paired notebook in place
would copy the injected parameters back into the source; so the source is converted into
a temporary .ipynb, executed into a temporary file beside the destination, and renamed.

Reused kernels (``reuse_kernel=True``, what the local study executor asks for): each thread
keeps one kernel for the notebooks it executes one after another, instead of starting a
kernel and importing torch, segmentation-models-pytorch and albumentations for every run
(5-6 s a run measured on the ci study, docs/decisions.md). Before each notebook the kernel is
made new again but for its imported modules: matplotlib figures closed, the namespace and
the execution counter reset (IPython's ``reset(new_session=True)``), garbage collected and
freed memory handed back to the system; a kernel that died, or that still holds more than
:data:`REUSE_RSS_LIMIT_BYTES` after this, is replaced by a fresh one. The executed notebook
is the same as from a fresh kernel (every run seeds itself; the tests check that a second
notebook sees nothing of the first).
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
from pathlib import Path

from xlm_core import XLMError, pause_for_test

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
#: the kernel's start-up warnings (e.g. "running over TCP without encryption") would
#: interleave with the progress lines
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
#: a reused kernel holding more than this after its clean-up is replaced by a fresh one
REUSE_RSS_LIMIT_BYTES = 2 * 1024**3
#: what a reused kernel runs before the next notebook (the reset clears the names it binds)
_RESET_CODE = (
    "import sys\n"
    "if 'matplotlib.pyplot' in sys.modules:\n"
    "    sys.modules['matplotlib.pyplot'].close('all')\n"
    "get_ipython().reset(new_session=True)\n"
)
_FREE_CODE = (
    "__import__('gc').collect(); "
    "getattr(__import__('ctypes').CDLL(None), 'malloc_trim', lambda pad: 0)(0);"
)


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
    reuse_kernel: bool = False,
) -> Path:
    """Execute ``source`` (py:percent via jupytext, or .ipynb) into ``output`` with ``parameters``.

    ``output`` appears whole (executed to a temporary, then renamed), on failure too: then
    it holds the traceback, and :class:`NotebookFailed` is raised naming it. ``reuse_kernel``:
    execute in this thread's kernel (see the module's docstring; :func:`shutdown_reused_kernels`
    stops them) instead of a kernel of its own.
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
        kernel_cwd = str(cwd) if cwd is not None else None
        km = None
        try:
            km = _thread_kernel(kernel_name, kernel_cwd) if reuse_kernel else None
            papermill.execute_notebook(
                str(nb_in),
                partial,
                parameters=parameters,
                kernel_name=kernel_name,
                cwd=kernel_cwd,
                progress_bar=False,
                log_output=False,
                execution_timeout=timeout_s,
                extra_arguments=list(KERNEL_ARGUMENTS),
                **({"km": km, "engine_name": _reused_kernel_engine()} if km is not None else {}),
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
            if km is not None:
                # after Ctrl-C the executor kills every kernel (stop_child_processes); stopping
                # it here would run the interrupted event loop again (asyncio then prints the
                # pending cell's "Kernel died")
                _drop_thread_kernel(stop=not isinstance(exc, (KeyboardInterrupt, SystemExit)))
            kept = _keep(partial, output)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise NotebookFailed(f"{type(exc).__name__}: {exc}", output if kept else None) from None
        pause_for_test("notebook", output.parent)
        _keep(partial, output)
    return output


# --------------------------------------------------------------------------- reused kernels

_thread = threading.local()  # .kernel: (kernel manager, (kernel name, cwd)), handed out before
_live_lock = threading.Lock()
_live: list = []  # every reused kernel manager not yet stopped


def _thread_kernel(kernel_name: str, cwd: str | None):
    """This thread's kernel manager, cleaned for the next notebook or started afresh."""
    from jupyter_client import AsyncKernelManager
    from jupyter_core.utils import run_sync

    key = (kernel_name, cwd)
    entry = getattr(_thread, "kernel", None)
    if entry is not None:
        km, started_for = entry
        if started_for != key or not run_sync(km.is_alive)() or not _clean(km):
            _stop(km)
            entry = None
    if entry is None:
        km = AsyncKernelManager(kernel_name=kernel_name)
        run_sync(km.start_kernel)(
            extra_arguments=[*KERNEL_ARGUMENTS, "--HistoryManager.hist_file=:memory:"],
            **({"cwd": cwd} if cwd is not None else {}))
        with _live_lock:
            _live.append(km)
    _thread.kernel = (km, key)
    return km


_ENGINE = "xlm-reused-kernel"


@functools.cache
def _reused_kernel_engine() -> str:
    """The papermill engine for a kernel that outlives its notebook (registered once): as
    papermill's own, but it closes its kernel client at the end (nbclient leaves the client of
    a kernel it does not own open, and its garbage collection would log a warning per run)."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    class Client(PapermillNotebookClient):
        def execute(self, **kwargs):
            try:
                return super().execute(**kwargs)
            finally:
                if self.kc is not None:
                    self.kc.stop_channels()
                    self.kc = None

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     **kwargs):
            # papermill's NBClientEngine.execute_managed_notebook with the client above
            kwargs = {k: v for k, v in kwargs.items() if k not in ("input_path", "timeout", "startup_timeout")}
            return Client(nb_man, timeout=execution_timeout, startup_timeout=start_timeout,
                          kernel_name=kernel_name, log=logging.getLogger("papermill"),
                          log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file,
                          **kwargs).execute()

    papermill_engines.register(_ENGINE, Engine)
    return _ENGINE


def _drop_thread_kernel(stop: bool = True) -> None:
    """Stop this thread's kernel (after a failure other than a cell's error: it may still be
    busy, or half dead); ``stop`` False: only forget it (a kernel whose parent exits ends too)."""
    entry = getattr(_thread, "kernel", None)
    _thread.__dict__.pop("kernel", None)
    if entry is None:
        return
    if stop:
        _stop(entry[0])
    else:
        _forget(entry[0])


def _clean(km) -> bool:
    """Reset a used kernel for the next notebook (module docstring); False when it failed or
    the kernel still holds more than :data:`REUSE_RSS_LIMIT_BYTES`."""
    from jupyter_core.utils import run_sync

    async def reset() -> bool:
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            for code in (_RESET_CODE, _FREE_CODE):
                reply = await kc.execute_interactive(code, store_history=False, timeout=60,
                                                     output_hook=lambda msg: None)
                if reply["content"].get("status") != "ok":
                    return False
            return True
        finally:
            kc.stop_channels()

    try:
        if not run_sync(reset)():
            return False
    except Exception:  # noqa: BLE001 - a kernel that cannot be reset is replaced
        return False
    return _kernel_rss(km) <= REUSE_RSS_LIMIT_BYTES


def _kernel_rss(km) -> int:
    """Resident bytes of the kernel's process (Linux ``/proc``; 0 where unknown)."""
    pid = getattr(getattr(km, "provisioner", None), "pid", None)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _forget(km) -> None:
    """Take ``km`` off the list :func:`shutdown_reused_kernels` stops."""
    with _live_lock:
        if km in _live:
            _live.remove(km)


def _stop(km) -> None:
    from jupyter_core.utils import run_sync

    _forget(km)
    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001 - already dead or half started: nothing left to stop
        pass


def shutdown_reused_kernels() -> int:
    """Stop every kernel kept by ``execute_notebook(..., reuse_kernel=True)``; returns how many.
    Kernels are child processes in sessions of their own: the executor calls this when the
    study ends (Ctrl-C kills them through ``stop_child_processes``)."""
    with _live_lock:
        kms = list(_live)
    for km in kms:
        _stop(km)
    _thread.__dict__.pop("kernel", None)
    return len(kms)


def _keep(partial: str, output: Path) -> bool:
    """Rename the executed temporary onto ``output`` if it holds a notebook; else drop it."""
    p = Path(partial)
    if p.is_file() and p.stat().st_size > 0:
        os.replace(p, output)
        return True
    p.unlink(missing_ok=True)
    return False
