"""xlm_core: landmark detection in x-ray images, the thin core of the study.

Coordinates are ``(x, y)`` in pixels everywhere in the public API; image arrays
are ``(H, W)``; heatmap stacks are ``(L, H, W)`` or ``(B, L, H, W)``.
"""

__version__ = "0.1.0"


class XLMError(Exception):
    """An error a user can act on: the message names the file and the problem.

    The command line prints it without a traceback and exits with status 1.
    """
