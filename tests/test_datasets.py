"""vaekernels.datasets: the IDX reader on files written here (well-formed and malformed), the real MNIST
when ../shared/data/mnist is present, the bundled digits, binarisation and permutations."""
import gzip
import os
import struct

import numpy as np
import pytest

import vaekernels as vk
from conftest import shared_data
from vaekernels import datasets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = shared_data("mnist") or os.path.join(REPO, "..", "shared", "data", "mnist")


def idx_bytes(array, type_code=0x08):
    """An IDX file written from the format description (independently of the reader)."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "t10k": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)}
    labels = {"train": rng.integers(0, 10, 5, dtype=np.uint8), "t10k": rng.integers(0, 10, 3, dtype=np.uint8)}
    for split in ("train", "t10k"):
        (tmp_path / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images[split])))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(labels[split]))  # raw, not gz
    return tmp_path, images, labels


def test_load_mnist_from_small_idx_files(tiny_mnist):
    folder, images, labels = tiny_mnist
    for split, stem in (("train", "train"), ("test", "t10k")):
        X, y = datasets.load_mnist(folder, split)
        assert X.shape == (len(labels[stem]), 784) and X.dtype == np.float32
        np.testing.assert_array_equal(X, images[stem].reshape(-1, 784).astype(np.float32) / 255)
        np.testing.assert_array_equal(y, labels[stem])
    X, y = datasets.load_mnist(folder / "train-images-idx3-ubyte.gz", labels=folder / "train-labels-idx1-ubyte",
                               dtype=np.float64)
    assert X.dtype == np.float64 and y.shape == (5,)
    X, y = datasets.load_mnist(folder / "t10k-images-idx3-ubyte.gz")
    assert X.shape == (3, 784) and y is None
    with pytest.raises(ValueError, match="split"):
        datasets.load_mnist(folder, "validation")
    with pytest.raises(FileNotFoundError):
        datasets.load_mnist(folder / "nothing-here")


@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.int32, 0x0C),
                                        (np.float32, 0x0D), (np.float64, 0x0E)])
def test_read_idx_types(tmp_path, dtype, code):
    a = (np.arange(24).reshape(2, 3, 4) * 3 - 7).astype(dtype) if dtype != np.uint8 else \
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "a.idx"
    p.write_bytes(idx_bytes(a, code))
    got = datasets.read_idx(p)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, a)


def test_read_idx_rejects_malformed_files(tmp_path):
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    cases = {
        "wrong_magic": (b"\x08\x03" + good[2:], "not an IDX file"),
        "unknown_type": (good[:2] + b"\x42" + good[3:], "not an IDX file"),
        "tiny": (b"\x00\x00", "shorter than the 4-byte magic"),
        "cut_header": (good[:6], "truncated or invalid IDX header"),
        "truncated": (good[:-3], "truncated"),
        "trailing": (good + b"\x00", "trailing bytes"),
        "zero_dims": (b"\x00\x00\x08\x00", "truncated or invalid"),
    }
    for name, (content, msg) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ValueError, match=msg):
            datasets.read_idx(p)
    p = tmp_path / "cut.gz"
    p.write_bytes(gzip.compress(good)[:-6])  # a gzip stream cut short
    with pytest.raises(ValueError, match="gzip"):
        datasets.read_idx(p)
    p = tmp_path / "labels-as-images"
    p.write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match="expected uint8 images"):
        datasets.load_mnist(p)


def test_load_mnist_label_count_mismatch(tmp_path):
    (tmp_path / "i").write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    (tmp_path / "l").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match="expected 2 labels"):
        datasets.load_mnist(tmp_path / "i", labels=tmp_path / "l")


@pytest.mark.skipif(not os.path.isdir(MNIST), reason="../shared/data/mnist not present")
def test_real_mnist():
    X, y = datasets.load_mnist(MNIST, "test")
    assert X.shape == (10000, 784) and y.shape == (10000,)
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y).tolist()[:3] == [980, 1135, 1032]  # the well-known test class counts
    # the README's check: train pixel mean / 255 = 0.130660 (the usual 0.1307)
    Xtr, ytr = datasets.load_mnist(MNIST, "train")
    assert Xtr.shape == (60000, 784)
    assert abs(float(Xtr.mean(dtype=np.float64)) - 0.130660) < 1e-6


def test_load_digits():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits as sk
    X, y = datasets.load_digits()
    d = sk()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    np.testing.assert_array_equal(X, (d.data / 16).astype(np.float32))
    np.testing.assert_array_equal(y, d.target)
    assert X.min() == 0 and X.max() == 1


def test_load_digits_without_sklearn(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        datasets.load_digits()


def test_binarize():
    X = np.linspace(0, 1, 11, dtype=np.float32)[None, :].repeat(20000, 0)
    B = datasets.binarize(X, seed=3)
    assert set(np.unique(B)) <= {0.0, 1.0} and B.dtype == np.float32
    # P(1) = grey level: the column means are within 5 standard errors (sd <= 0.5 / sqrt(20000) = 0.0035)
    np.testing.assert_allclose(B.mean(0), X[0], atol=0.018)
    assert np.all(B[:, 0] == 0) and np.all(B[:, -1] == 1)
    np.testing.assert_array_equal(B, datasets.binarize(X, seed=3))
    # offset semantics: U at positions offset.. equal the tail of a longer draw
    np.testing.assert_array_equal(datasets.binarize(X[1:], 3, offset=11), B[1:])


def test_permutation_and_split():
    p = datasets.permutation(1000, seed=1)
    assert sorted(p.tolist()) == list(range(1000))
    np.testing.assert_array_equal(p, datasets.permutation(1000, seed=1))
    assert not np.array_equal(p, datasets.permutation(1000, seed=2))
    np.testing.assert_array_equal(p, np.argsort(vk.rand(1000, 1, 0, np.float64), kind="stable"))
    X = np.arange(20).reshape(10, 2)
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, np.arange(10), test_fraction=0.3, seed=0)
    assert len(Xte) == 3 and len(Xtr) == 7
    assert sorted(np.concatenate([ytr, yte]).tolist()) == list(range(10))
    np.testing.assert_array_equal(Xte[:, 0] // 2, yte)
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.train_test_split(X, test_fraction=1.5)
