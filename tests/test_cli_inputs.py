"""Every bad input a clear error before any work: data checked before binarisation in every entry point
(one message), damaged and crafted checkpoints a ValueError (deep JSON, compression methods, encryption,
every single-bit flip of a small checkpoint), a history of the wrong shape refused at load and by fit
before any step, and the command line's failures one line with exit status 2 (usage, bad input) or 1
(a runtime failure such as divergence), never a traceback, with outputs checked before training."""
import io
import json
import os
import re
import struct
import zipfile

import numpy as np
import pytest

import vaekernels as vk
from vaekernels import cli


def _run(argv, capsys):
    """(exit status, stdout, stderr) of the command line run in-process."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code, err, status):
    assert code == status, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -------------------------------------------------------------------------------------------------
# data: checked first, one message everywhere
# -------------------------------------------------------------------------------------------------
def test_binarize_refuses_nan_and_values_outside_the_unit_interval():
    with pytest.raises(ValueError, match=r"X contains NaN or inf \(first at row 0, column 1\)"):
        vk.datasets.binarize([[0.5, np.nan, 1.0]], seed=0)
    with pytest.raises(ValueError, match=r"X must lie in \[0, 1\].*\[0.5, 1.5\]"):
        vk.datasets.binarize(np.array([[0.5, 1.5]]), seed=0)
    np.testing.assert_array_equal(vk.datasets.binarize(np.array([[0.0, 1.0]]), seed=0), [[0.0, 1.0]])


@pytest.mark.parametrize("bad,pattern", [(np.nan, "contains NaN or inf"), (2.0, r"must lie in \[0, 1\]"),
                                         (-np.inf, "contains NaN or inf")])
def test_train_and_eval_check_the_data_before_binarising_with_one_message(tmp_path, capsys, bad, pattern):
    X = np.full((20, 6), 0.5, np.float32)
    X[3, 2] = bad
    np.save(tmp_path / "x.npy", X)
    ckpt = tmp_path / "m.npz"
    vk.VAE(6, 2, hidden=(4,)).save(ckpt)
    code, out, err = _run(["eval", str(ckpt), "--data", str(tmp_path / "x.npy"), "--k", "2"], capsys)
    eval_line = _one_line_error(code, err, 2)
    code, out, err = _run(["train", "--data", str(tmp_path / "x.npy"), "--epochs", "1", "--out",
                           str(tmp_path / "run")], capsys)
    train_line = _one_line_error(code, err, 2)
    message = lambda line: line.split("error: ", 1)[1].rsplit(" (see", 1)[0]  # noqa: E731
    assert message(eval_line) == message(train_line)
    assert "--data" in train_line and re.search(pattern, train_line), train_line
    assert not (tmp_path / "run").exists()                 # refused before any work


# -------------------------------------------------------------------------------------------------
# checkpoints: every malformed file a ValueError
# -------------------------------------------------------------------------------------------------
def _saved(tmp_path, model=None, name="good.npz"):
    path = tmp_path / name
    (model or vk.VAE(6, 2, hidden=(4,), seed=1)).save(path)
    return path


def _rewrite(tmp_path, src, edit, name="bad.npz"):
    with zipfile.ZipFile(src) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    edit(entries)
    out = tmp_path / name
    with zipfile.ZipFile(out, "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)
    return out


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.mark.parametrize("entry", ["config", "history"])
def test_deeply_nested_json_is_a_value_error(tmp_path, entry):
    def edit(e):
        e[f"{entry}.npy"] = _npy(np.array("[" * 100_000 + "]" * 100_000))
    with pytest.raises(ValueError, match="nests deeper than 32 levels"):
        vk.VAE.load(_rewrite(tmp_path, _saved(tmp_path), edit))


def _patch_zip(path, out, method=None, flag_bits=None):
    """Set a member's compression method or general-purpose flags in both of its zip headers."""
    data = bytearray(path.read_bytes())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.find(sig)
        if method is not None:
            struct.pack_into("<H", data, at + method_at, method)
        if flag_bits is not None:
            struct.pack_into("<H", data, at + flag_at, flag_bits)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("method,flags,pattern", [
    (99, None, "compression method 99"),                # zipfile: NotImplementedError
    (zipfile.ZIP_BZIP2, None, "compression method 12"),   # supported by zipfile, never written by save
    (None, 0x1, "is encrypted"),                         # zipfile: RuntimeError
])
def test_compression_methods_and_encryption_are_value_errors(tmp_path, method, flags, pattern):
    bad = _patch_zip(_saved(tmp_path), tmp_path / "bad.npz", method, flags)
    with pytest.raises(ValueError, match=pattern):
        vk.VAE.load(bad)


def test_damaged_data_fails_the_crc_check(tmp_path):
    good = _saved(tmp_path)
    data = bytearray(good.read_bytes())
    at = data.find(b"\x93NUMPY", data.find(b"adam_m.npy"))
    data[at + 200] ^= 0x10                              # inside adam_m's stored values
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="BadZipFile.*CRC|CRC"):
        vk.VAE.load(bad)


def _same_model(a, b):
    pa, pb = a.get_params(), b.get_params()
    return (a.config() == b.config() and a.step == b.step and a.epoch == b.epoch and a.history == b.history
            and pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)
            and np.array_equal(a._adam_m, b._adam_m) and np.array_equal(a._adam_v, b._adam_v))


def test_every_single_bit_flip_of_a_small_checkpoint(tmp_path):
    """Each of the ~27,000 single-bit flips of a 3.4 KB checkpoint either raises ValueError or loads a model
    equal to the original (flips in zip metadata that nothing reads: timestamps, attributes, ...)."""
    good = _saved(tmp_path, vk.VAE(2, 1, hidden=(), seed=0), "small.npz")
    data = good.read_bytes()
    assert len(data) <= 4096
    original = vk.VAE.load(good)
    flipped = tmp_path / "flipped.npz"
    loaded = refused = 0
    for bit in range(8 * len(data)):
        b = bytearray(data)
        b[bit // 8] ^= 1 << (bit % 8)
        flipped.write_bytes(bytes(b))
        try:
            model = vk.VAE.load(flipped)
        except ValueError:
            refused += 1
            continue
        assert _same_model(model, original), f"bit {bit} loads a different model"
        loaded += 1
    assert refused > 0.5 * 8 * len(data) and loaded > 0, (refused, loaded)


# -------------------------------------------------------------------------------------------------
# history: validated at load, checked by fit before any step
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("history", [{"epoch": "x"}, {"epoch": [0, "x"]}, {"elbo": [1.0, None]},
                                     {"epoch": [-1]}, {"elbo": 3}, [1, 2], {"epoch": [True]}], ids=str)
def test_a_history_of_the_wrong_shape_is_refused_at_load_and_by_fit(tmp_path, history):
    def edit(e):
        e["history.npy"] = _npy(np.array(json.dumps(history)))
    with pytest.raises(ValueError, match="its history is invalid"):
        vk.VAE.load(_rewrite(tmp_path, _saved(tmp_path), edit))
    model = vk.VAE(6, 2, hidden=(4,), seed=1)
    model.history = history
    before = model.get_params()
    with pytest.raises(ValueError, match="model.history cannot be extended"):
        model.fit(np.full((8, 6), 0.5), epochs=1, progress=False)
    assert model.step == 0 and model.epoch == 0
    assert all(np.array_equal(v, before[k]) for k, v in model.get_params().items())


def test_divergence_leaves_a_consistent_model(tmp_path):
    """A non-finite loss in the second epoch: the first epoch is committed (counter and history together),
    the failing epoch's finite steps are in the parameters, Adam state and step counter, and the model
    saves and loads as it is."""
    X = (np.random.default_rng(0).random((64, 6)) < 0.5).astype(np.float32)
    model = vk.VAE(6, 2, hidden=(4,), seed=1)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        model.fit(X, epochs=3, batch_size=8, lr=lambda e: 1e-3 if e == 0 else 1e30, progress=False)
    assert model.epoch == 1 and model.history["epoch"] == [0] and len(model.history["elbo"]) == 1
    assert 8 <= model.step < 16
    assert all(np.all(np.isfinite(v)) for v in model.get_params().values())
    path = tmp_path / "after.npz"
    model.save(path)
    assert _same_model(vk.VAE.load(path), model)


# -------------------------------------------------------------------------------------------------
# the command line
# -------------------------------------------------------------------------------------------------
def test_unreadable_data_files_are_usage_errors(tmp_path, capsys):
    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "arch.npz", x=np.zeros((3, 4)))
    os.replace(tmp_path / "arch.npz", tmp_path / "arch.npy")
    np.save(tmp_path / "trunc.npy", np.zeros((50, 4), np.float32))
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "trunc.npy").read_bytes()[:300])
    for name, pattern in (("empty.npy", "not a readable .npy array"), ("arch.npy", "is an .npz archive"),
                          ("trunc.npy", "not a readable .npy array|more than")):
        code, _, err = _run(["train", "--data", str(tmp_path / name)], capsys)
        line = _one_line_error(code, err, 2)
        assert "--data" in line and any(p in line for p in pattern.split("|")), line


def test_a_model_too_big_is_a_usage_error_before_allocation(capsys):
    for hidden in ("3000000000", "100000000,100000000"):
        code, _, err = _run(["train", "--data", "digits", "--hidden", hidden], capsys)
        line = _one_line_error(code, err, 2)
        assert "--hidden" in line, line


def test_divergence_is_one_line_with_exit_status_1(tmp_path, capsys):
    code, out, err = _run(["train", "--data", "digits", "--lr", "1e30", "--epochs", "2", "--hidden", "8",
                           "--latent", "2", "--no-progress", "--out", str(tmp_path / "run")], capsys)
    line = _one_line_error(code, err, 1)
    assert "training diverged at epoch 1, step" in line and "try a lower --lr" in line, line


def test_an_output_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    code, out, err = _run(["train", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "taken")], capsys)
    line = _one_line_error(code, err, 2)
    assert "--out" in line and "not a folder" in line and "training on" not in out
    code, out, err = _run(["demo", "--out", str(tmp_path / "taken")], capsys)
    assert "--out" in _one_line_error(code, err, 2)
