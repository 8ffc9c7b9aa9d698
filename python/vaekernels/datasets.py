"""Data for the VAE: scikit-learn's bundled 8x8 digits, an MNIST IDX reader, binarisation, permutations.

* ``load_digits()``: the 1,797 UCI 8x8 digits shipped inside scikit-learn (no download), scaled to [0, 1].
* ``load_mnist(path, split)``: the standard IDX files (``train-images-idx3-ubyte[.gz]`` ...) that you have;
  ``read_idx`` parses any IDX file and rejects malformed ones (wrong magic, truncated, trailing bytes).
* ``binarize(X, seed)``: one Bernoulli draw per pixel, P(1) = grey level, from ``vaekernels.rand``.
* ``permutation(n, seed, offset)``: a random permutation from the package's RNG (stable argsort of
  float64 uniforms), so shuffles replay bit for bit without NumPy's global state.
"""
from __future__ import annotations

import gzip
import os

import numpy as np

from . import kernels as ops
from .kernels import validate as V

__all__ = ["load_digits", "load_mnist", "read_idx", "binarize", "check_data", "permutation", "train_test_split"]

# IDX type codes (third byte of the magic number) -> big-endian element dtype
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def load_digits(dtype=np.float32):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 64 pixels, grey levels 0..16 scaled to [0, 1]).

    Returns (X (1797, 64) of ``dtype``, y (1797,) int64 labels 0..9). Needs scikit-learn (an optional
    extra: ``pip install scikit-learn`` or ``pip install vaekernels[demo]``); the data ship inside it.
    """
    dtype = V.dtype_arg(dtype)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as e:
        raise ImportError("load_digits needs scikit-learn, which bundles the 8x8 digits data: "
                          "pip install scikit-learn (or pip install 'vaekernels[demo]')") from e
    d = _sk_load_digits()
    X = (np.asarray(d.data, np.float64) / 16.0).astype(dtype)
    return X, np.asarray(d.target, np.int64)


# -------------------------------------------------------------------------------------------------
# IDX (MNIST) files
# -------------------------------------------------------------------------------------------------
def _read_bytes(path):
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":  # gzip magic
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a cut stream is EOFError
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({e})") from e
    with open(path, "rb") as f:
        return f.read()


def read_idx(path):
    """Read one IDX file (raw or gzip-compressed, detected from its first bytes) into a NumPy array.

    Format: 2 zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions, then one big-endian uint32 per dimension, then the data.
    A wrong magic, a header or body shorter than declared, or trailing bytes raise ValueError.
    Returns the array in native byte order.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file ({len(raw)} bytes, shorter than the 4-byte magic)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()}; expected 0000 followed by a "
                         f"type code in {sorted(hex(c) for c in _IDX_DTYPES)} and the number of dimensions)")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: truncated or invalid IDX header ({ndim} dimensions, {len(raw)} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {what}: header declares shape {shape} ({expected} bytes in all), "
                         f"file holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
    raise FileNotFoundError(f"no {stem} or {stem}.gz in {folder!r}")


def load_mnist(path, split="train", dtype=np.float32, labels=None):
    """MNIST from the standard IDX files: returns (X (n, 784) in [0, 1] of ``dtype``, y (n,) int64).

    path: a folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (raw or ``.gz``), in which case
    ``split`` ("train" or "test") picks the pair; or the path of an images file, with ``labels`` the path
    of its labels file (or None: y is then None). Pixels are divided by 255 (grey levels, not binarised:
    see ``binarize``). Malformed files raise ValueError (see ``read_idx``).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if split not in _MNIST_FILES:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        img_stem, lab_stem = _MNIST_FILES[split]
        images_path, labels_path = _find(path, img_stem), _find(path, lab_stem)
    elif os.path.isfile(path):
        images_path, labels_path = path, (None if labels is None else os.fspath(labels))
    else:
        raise FileNotFoundError(f"no MNIST folder or images file at {path!r}")
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{images_path}: expected uint8 images of shape (n, rows, cols), got {images.dtype} "
                         f"{images.shape}")
    X = images.reshape(images.shape[0], -1).astype(V.dtype_arg(dtype))
    X /= 255
    if labels_path is None:
        return X, None
    y = read_idx(labels_path)
    if y.ndim != 1 or y.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_path}: expected {images.shape[0]} labels (one per image), got shape {y.shape}")
    return X, y.astype(np.int64)


# -------------------------------------------------------------------------------------------------
# Randomised helpers on the package's streams
# -------------------------------------------------------------------------------------------------
def check_data(X, name="X", unit_interval=False):
    """The data check every entry point makes before anything else (``VAE.fit`` and the evaluation
    methods, ``binarize``, the command line), with one message: X finite (NaN or inf is a ValueError naming
    the first row and column), and in [0, 1] when ``unit_interval`` (grey levels for binarisation or a
    Bernoulli likelihood). Returns X."""
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        where = f"first at row {bad[0]}, column {bad[1]}" if bad.size == 2 else f"first at index {tuple(bad)}"
        raise ValueError(f"{name} contains NaN or inf ({where}); clean the data first")
    if unit_interval and X.size:
        lo, hi = float(X.min()), float(X.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"{name} must lie in [0, 1] for the Bernoulli likelihood / binarisation, got values "
                             f"in [{lo}, {hi}] (scale it, e.g. pixels / 255)")
    return X


def binarize(X, seed, offset=0, out=None):
    """A Bernoulli draw per element: 1 where U < X, U ~ ``rand(X.shape, seed, offset)`` (so P(1) = X).

    X: float array with values in [0, 1] (NaN, inf or values outside are a ValueError: ``check_data``).
    Consumes stream positions offset .. offset + X.size - 1. Returns an array of X's dtype (or fills
    ``out``)."""
    X = check_data(V.float_array("X", X), "X", unit_interval=True)
    u = ops.rand(X.shape, seed, offset, X.dtype)
    out = V.host_output("out", out, X.shape, X.dtype)
    return np.less(u, X, out=out)


def permutation(n, seed, offset=0):
    """A permutation of range(n) from ``rand`` stream ``seed`` (positions offset .. offset + n - 1, float64):
    the stable argsort of n uniforms, so the same (n, seed, offset) always gives the same permutation."""
    n = V.integer("n", n, 0, 1 << 62)
    return np.argsort(ops.rand(n, seed, offset, np.float64), kind="stable")


def train_test_split(X, y=None, test_fraction=0.2, seed=0):
    """Split rows at random (``permutation(len(X), seed)``): returns (X_train, X_test, y_train, y_test)
    (the y entries are None if y is None). The test part has round(test_fraction * n) rows."""
    X = np.asarray(X)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n = X.shape[0]
    perm = permutation(n, seed)
    n_test = int(round(float(test_fraction) * n))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    if y is None:
        return X[train], X[test], None, None
    y = np.asarray(y)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} rows but X has {n}")
    return X[train], X[test], y[train], y[test]
