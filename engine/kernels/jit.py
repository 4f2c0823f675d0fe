"""The one place compile flags are set for every kernel.

`cache=True` keeps compiled machine code on disk so a warm start skips compilation. fastmath stays
off: friction thresholds and counter sums must compare exactly as the reference evaluation does.
`error_model="numpy"` lets division return inf/nan instead of raising, so kernels cannot raise.
"""

from __future__ import annotations

from typing import Any, TypeVar

from numba import njit

F = TypeVar("F")

KERNEL_FLAGS: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
    "boundscheck": False,
}


def kernel(function: F) -> F:
    """Compile `function` in nopython mode with the project's flags."""
    compiled: F = njit(**KERNEL_FLAGS)(function)
    return compiled
