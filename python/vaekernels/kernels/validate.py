"""Argument checks: integers, seeds and offsets, dtypes, shapes and the scalar kinds of the kernel table.

Errors follow one rule: ``TypeError`` for a wrong type or dtype, ``ValueError`` for a wrong shape or value,
and the message names the argument, what was expected and what was given. The kernels' array checks
(roles, dtypes, ``out=``) are in ``dispatch.py``, derived from the table; these helpers are shared by it
and by the rest of the package (VAE, MCMC, datasets).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
U64 = 1 << 64


def integer(name, value, lo=0, hi=U64):
    """A Python/NumPy integer in [lo, hi) (bools are rejected: they are almost always a mistake)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not lo <= value < hi:
        hi_s = "2**64" if hi == U64 else str(hi)
        raise ValueError(f"{name} must be in [{lo}, {hi_s}), got {value}")
    return value


def real(name, value, lo=None, hi=None, hi_open=False):
    """A real number (Python or NumPy; bools rejected) as a float, NaN refused, within the given bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got nan")
    if lo is not None and hi is not None:
        if not (lo <= value < hi if hi_open else lo <= value <= hi):
            raise ValueError(f"{name} must be in [{lo}, {hi}{')' if hi_open else ']'}, got {value}")
    elif lo is not None and not value >= lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return value


def seed_offset(seed, offset, count):
    """Validate a (seed, offset) pair for a draw of ``count`` stream positions."""
    seed = integer("seed", seed)
    offset = integer("offset", offset)
    check_stream_end(offset, count)
    return seed, offset


def check_stream_end(offset, count):
    if offset + count > U64:
        raise ValueError(
            f"offset + number of draws must not exceed 2**64 (the stream length), got {offset} + {count}")


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
    if math.prod(shape) >= 1 << 62:
        raise ValueError(f"shape {shape} has too many elements ({math.prod(shape)})")
    return shape


def same_shape(ref_name, ref, name, a):
    if a.shape != ref.shape:
        raise ValueError(f"{name} has shape {a.shape} but {ref_name} has shape {ref.shape}; they must be equal")


def float_array(name, a):
    """A float32 or float64 host array (NumPy), C-contiguous (copied once if it is not)."""
    a = np.asarray(a, order="C")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    return a


def host_output(name, out, shape, dtype):
    """An ``out=`` NumPy array: None allocates; otherwise exact dtype and shape, C-contiguous and writable."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(out).__name__}")
    output_layout(name, out, shape, dtype)
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def output_layout(name, out, shape, dtype):
    """dtype, shape, C-contiguity and alignment of an ``out=`` array (NumPy or CuPy)."""
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not getattr(out.flags, "aligned", True):
        raise ValueError(f"{name} must be aligned to its element size (it is written element by element)")


def scalar_check(spec):
    """The validator of one scalar parameter of the kernel table, by its kind (spec.Scalar): a function
    value -> validated value, built once per parameter."""
    kind, name = spec.kind, spec.name
    if kind in ("seed", "offset"):      # the stream end is checked once the size is known
        return lambda v: integer(name, v)
    if kind == "n_samples":
        return lambda v: None if v is None else integer(name, v, 1, 1 << 62)
    if kind == "real":
        lo, hi, hi_open = spec.lo, spec.hi, spec.hi_open
        return lambda v: real(name, v, lo, hi, hi_open)
    if kind == "step":
        return lambda v: integer(name, v, 1, 1 << 62)
    if kind == "shape":
        return shape_arg
    if kind == "dtype":
        return dtype_arg
    raise AssertionError(kind)
