"""Argument checks shared by the public functions: dtypes, shapes, seeds and ``out=`` arrays.

Errors follow one rule (see DESIGN.md): ``TypeError`` for a wrong type or dtype, ``ValueError`` for a
wrong shape or value, and the message names the argument, what was expected and what was given.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_U64 = 1 << 64


def float_arrays(*named):
    """Validate ``(name, array)`` pairs: all float32 or all float64. Returns (dtype, C-contiguous arrays).

    Non-contiguous and negative-stride views are copied once; contiguous inputs are passed through.
    """
    dtype = None
    first = None
    out = []
    for name, a in named:
        if not isinstance(a, np.ndarray):
            if hasattr(a, "__cuda_array_interface__"):
                host = f" but {first} is a host (NumPy) array" if first else ""
                raise TypeError(f"{name} is a GPU array{host}; mixing GPU and host (NumPy) arrays is not supported "
                                f"(move them to one side with cupy.asarray / cupy.asnumpy)")
            a = np.asarray(a)
        if a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
        if dtype is None:
            dtype, first = a.dtype, name
        elif a.dtype != dtype:
            raise TypeError(
                f"{name} has dtype {a.dtype} but {first} has dtype {dtype}; mixed dtypes are not cast silently "
                f"(convert with .astype first)")
        out.append(np.asarray(a, order="C"))  # not ascontiguousarray: it turns 0-d arrays into shape (1,)
    return dtype, out


def same_shape(ref_name, ref, name, a):
    if a.shape != ref.shape:
        raise ValueError(f"{name} has shape {a.shape} but {ref_name} has shape {ref.shape}; they must be equal")


def rows_view(name, a):
    """(rows, cols) view of an array whose last axis is reduced; returns (view, batch shape)."""
    if a.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the reduced last axis), got a scalar")
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1]), a.shape[:-1]


def integer(name, value, lo=0, hi=_U64):
    """A Python/NumPy integer in [lo, hi) (bools are rejected: they are almost always a mistake)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not lo <= value < hi:
        hi_s = "2**64" if hi == _U64 else str(hi)
        raise ValueError(f"{name} must be in [{lo}, {hi_s}), got {value}")
    return value


def seed_offset(seed, offset, count):
    """Validate a (seed, offset) pair for a draw of ``count`` stream positions."""
    seed = integer("seed", seed)
    offset = integer("offset", offset)
    if offset + count > _U64:
        raise ValueError(
            f"offset + number of draws must not exceed 2**64 (the stream length), got {offset} + {count}")
    return seed, offset


def output(name, out, shape, dtype):
    """An ``out=`` array: None allocates; otherwise it must match exactly and be writable and C-contiguous."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(out).__name__}")
    output_layout(name, out, shape, dtype)
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def output_layout(name, out, shape, dtype):
    """dtype, shape and C-contiguity of an ``out=`` array (NumPy or CuPy)."""
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


def philox_args(counters, keys):
    """uint32 counters (N, 4) and keys (N, 2) for the raw Philox block function (NumPy or CuPy)."""
    for name, a in (("counters", counters), ("keys", keys)):
        if a.dtype != np.uint32:
            raise TypeError(f"{name} must have dtype uint32, got {a.dtype}")
    if counters.ndim != 2 or counters.shape[1] != 4:
        raise ValueError(f"counters must have shape (N, 4), got {counters.shape}")
    if keys.shape != (counters.shape[0], 2):
        raise ValueError(f"keys must have shape ({counters.shape[0]}, 2), got {keys.shape}")


def adam_hyper(step, lr, beta1, beta2, eps, weight_decay):
    """Validated AdamW hyper-parameters: (step, lr, beta1, beta2, eps, weight_decay)."""
    step = integer("step", step, 1, 1 << 62)
    lr, beta1, beta2, eps, weight_decay = (float(a) for a in (lr, beta1, beta2, eps, weight_decay))
    if not 0.0 <= beta1 < 1.0 or not 0.0 <= beta2 < 1.0:
        raise ValueError(f"beta1 and beta2 must be in [0, 1), got {beta1} and {beta2}")
    if not lr >= 0.0 or not eps >= 0.0 or not weight_decay >= 0.0:
        raise ValueError(f"lr, eps and weight_decay must be >= 0, got {lr}, {eps}, {weight_decay}")
    return step, lr, beta1, beta2, eps, weight_decay


def outputs(name, out, count):
    """Split a tuple ``out=`` argument into ``count`` entries (None -> all None)."""
    if out is None:
        return (None,) * count
    if not isinstance(out, (tuple, list)) or len(out) != count:
        raise TypeError(f"{name} must be a tuple of {count} arrays, got {type(out).__name__}")
    return tuple(out)


def dtype_arg(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from e
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def shape_arg(shape):
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        shape = tuple(integer("shape", s, 0, 1 << 62) for s in shape)
    except TypeError as e:
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from e
    return shape
