"""xlm_core: landmark detection in x-ray images, the thin core of the study.

Coordinates are ``(x, y)`` in pixels everywhere in the public API; image arrays
are ``(H, W)``; heatmap stacks are ``(L, H, W)`` or ``(B, L, H, W)``.
"""

__version__ = "0.1.0"


class XLMError(Exception):
    """An error a user can act on: the message names the file and the problem.

    The command line prints it without a traceback and exits with status 1.
    """


#: test-only hook (:func:`pause_for_test`): ``POINT@RUN_ID``; unset, the hook does nothing
PAUSE_ENV = "XLM_TEST_PAUSE_AT"
#: the named pipe (FIFO) the paused process announces itself on
PAUSE_FIFO_ENV = "XLM_TEST_PAUSE_FIFO"


def pause_for_test(point: str, run_dir) -> None:
    """A test's kill point, inert unless ``XLM_TEST_PAUSE_AT`` is set.

    With ``XLM_TEST_PAUSE_AT=POINT@RUN_ID`` and ``XLM_TEST_PAUSE_FIFO=PATH`` (a named pipe the
    test reads), the process that reaches ``point`` in the run folder named ``RUN_ID`` writes
    ``"POINT PID"`` into the pipe and blocks until it is killed: the test then kills the study
    at exactly that point, never at a moment found by a clock. The points:

    - ``checkpoint``: training wrote a resume state (``last.pt``) after an epoch;
    - ``metrics``: training wrote ``metrics.json`` (before it removes ``last.pt``);
    - ``notebook``: the executed notebook is complete in its temporary, before its rename onto
      ``run.ipynb`` (in the study's own process).
    """
    import os
    import signal
    from pathlib import Path

    if os.environ.get(PAUSE_ENV) != f"{point}@{Path(run_dir).name}":
        return
    with open(os.environ[PAUSE_FIFO_ENV], "w") as fifo:
        fifo.write(f"{point} {os.getpid()}\n")
    while True:  # until killed
        signal.pause()
