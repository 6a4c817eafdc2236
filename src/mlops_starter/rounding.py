"""Floats at a precision that no CPU, BLAS kernel or thread count reaches.

Two machines that fit the same model on the same data agree to about the 15th
significant digit. The last bits of a BLAS dot product (the logistic baseline, the
Platt map) or of a libm `exp` differ from one kernel or CPU to the next. So every
noisy learned parameter, every recorded probability and every reported figure is kept
to SIGNIFICANT_DIGITS.

The rounding is correctly rounded decimal (Python's float formatting), the same on
every platform. For the result to differ, noise of about 1e-16 must straddle a
rounding boundary 1e-6 wide: roughly once in a billion values. A figure one part in a
million finer would sit far inside any metric's sampling error (docs/explanation/reproducibility.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SIGNIFICANT_DIGITS = 6
ROUNDING_CHUNK = 65_536


def round_sig(values: Any) -> Any:
    """`values` (a float or an array of floats) to SIGNIFICANT_DIGITS significant digits."""
    if np.ndim(values) == 0:
        return float(f"{float(values):.{SIGNIFICANT_DIGITS}g}")
    array = np.asarray(values, dtype=float)
    flat, rounded = array.ravel(), np.empty(array.size)
    # In chunks: a Python float per value costs 32 bytes, so a whole column of out-of-fold
    # probabilities at once would set a streaming stage's peak memory.
    for start in range(0, array.size, ROUNDING_CHUNK):
        chunk = flat[start : start + ROUNDING_CHUNK].tolist()
        rounded[start : start + len(chunk)] = [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in chunk]
    return rounded.reshape(array.shape)


def rounded_figures(figures: Any) -> Any:
    """`figures` (nested dicts, lists and tables of them) with every float rounded;
    integers, strings and booleans as they are."""
    if isinstance(figures, dict):
        return {key: rounded_figures(value) for key, value in figures.items()}
    if isinstance(figures, list | tuple):
        return [rounded_figures(value) for value in figures]
    if isinstance(figures, pd.DataFrame):
        rounded = figures.copy()
        for column in figures.select_dtypes("float").columns:
            rounded[column] = round_sig(figures[column])
        return rounded
    if isinstance(figures, float | np.floating):
        return round_sig(figures)
    return figures
