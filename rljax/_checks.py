"""Argument checks for the public return and loss functions.

Each check raises a ``ValueError`` whose message names the function, the argument and its
shape or dtype (``"lambda_returns: discount_t has shape (6,), r_t has (5,)"``), never a
position. Shapes and dtypes are static under ``jax.jit``, so the checks run once at trace
time and cost nothing in the compiled function.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(x))


def _dtype(x: Any):
    dtype = getattr(x, "dtype", None)
    return dtype if dtype is not None else jnp.result_type(x)


def time_major(fn: str, **arrays: Any) -> None:
    """Each array has a leading time axis of length >= 1, and all have the first's shape."""
    ref, x0 = next(iter(arrays.items()))
    shape = _shape(x0)
    if len(shape) < 1:
        raise ValueError(
            f"{fn}: {ref} must have a leading time axis (rank >= 1), got rank 0 (shape ())"
        )
    if shape[0] < 1:
        raise ValueError(f"{fn}: {ref} must have at least one time step, got shape {shape}")
    same_shape(fn, **arrays)


def same_shape(fn: str, **arrays: Any) -> None:
    """All arrays have the first one's shape; ``None`` entries are skipped."""
    (ref, x0), *rest = arrays.items()
    shape = _shape(x0)
    for name, x in rest:
        if x is not None and _shape(x) != shape:
            raise ValueError(
                f"{fn}: {name} has shape {_shape(x)}, {ref} has {shape}; they must be equal"
            )


def shape_is(fn: str, name: str, x: Any, shape: tuple[int, ...], what: str) -> None:
    """``x`` (unless None) has exactly ``shape``, described in the message as ``what``."""
    if x is not None and _shape(x) != tuple(shape):
        raise ValueError(f"{fn}: {name} must have {what} {tuple(shape)}, got {_shape(x)}")


def rank(fn: str, name: str, x: Any, expected: int, what: str) -> None:
    """``x`` has rank ``expected`` (``what`` names the axes, e.g. "[B, A]")."""
    if len(_shape(x)) != expected:
        raise ValueError(f"{fn}: {name} must have rank {expected} ({what}), got shape {_shape(x)}")


def rank_at_least(fn: str, name: str, x: Any, minimum: int, what: str) -> None:
    if len(_shape(x)) < minimum:
        raise ValueError(
            f"{fn}: {name} must have rank >= {minimum} ({what}), got shape {_shape(x)}"
        )


def scalar_or_shape(fn: str, name: str, x: Any, ref: str, ref_x: Any) -> None:
    """``x`` is a scalar or has ``ref_x``'s shape."""
    shape = _shape(x)
    if shape != () and shape != _shape(ref_x):
        raise ValueError(
            f"{fn}: {name} must be a scalar or have {ref}'s shape {_shape(ref_x)}, got {shape}"
        )


def floating(fn: str, **arrays: Any) -> None:
    """Each array has a floating-point dtype."""
    for name, x in arrays.items():
        dtype = _dtype(x)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"{fn}: {name} must be a floating-point array, got dtype {dtype}")


def series(fn: str, done_t: Any = None, **floats: Any) -> None:
    """Time-major arrays of one shape (:func:`time_major`), the ``floats`` of a float dtype."""
    time_major(fn, **floats, **({} if done_t is None else {"done_t": done_t}))
    floating(fn, **floats)


def per_step(fn: str, mask: Any = None, **floats: Any) -> None:
    """Float arrays of one shape, and an optional ``mask`` of that shape."""
    same_shape(fn, **floats, mask=mask)
    floating(fn, **floats)
