"""Untrusted files: VAE.load and the command line's data loading never unpickle and refuse, with a clear
ValueError and without allocating what a header claims, object arrays, huge declared shapes, unexpected or
oddly named entries, zip bombs and checkpoints of another format."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import vaekernels as vk
from vaekernels import cli


def _npy(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=True)
    return buf.getvalue()


def _npy_with_header(shape, dtype, data=b""):
    """A .npy file whose header claims (shape, dtype) but holds only ``data``."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def _checkpoint(tmp_path, edit=None, name="m.npz", compress=False):
    """A valid checkpoint's entries (as .npy bytes), edited by ``edit(entries)``, written as a zip."""
    path = tmp_path / "good.npz"
    vk.VAE(6, 2, hidden=(4,), seed=1).save(path)
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    if edit is not None:
        edit(entries)
    out = tmp_path / name
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for n, b in entries.items():
            z.writestr(n, b)
    return out


def _refused(path, match):
    with pytest.raises(ValueError, match=match):
        vk.VAE.load(path)


def test_a_rebuilt_valid_checkpoint_loads(tmp_path):
    m = vk.VAE.load(_checkpoint(tmp_path))
    assert m.config()["n_inputs"] == 6


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    def edit(e):
        e["history.npy"] = _npy(np.array([Boom()], dtype=object))
    _refused(_checkpoint(tmp_path, edit), "Python objects")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("shape", [(2**40,), (2**31, 2**31), (10**6,)], ids=str)
def test_huge_declared_shapes_are_refused_before_allocation(tmp_path, shape):
    def edit(e):
        e["adam_m.npy"] = _npy_with_header(shape, np.float32, b"\0" * 64)
    _refused(_checkpoint(tmp_path, edit), "declares shape")


def test_shapes_that_disagree_with_the_configuration_are_refused(tmp_path):
    def edit(e):
        e["param/enc.0.W.npy"] = _npy(np.zeros((6, 5), np.float32))
    _refused(_checkpoint(tmp_path, edit), "enc.0.W has shape")

    def bigger_model(e):       # a configuration asking for a model far bigger than the file
        cfg = json.loads(str(np.load(io.BytesIO(e["config.npy"]))))
        cfg["n_inputs"] = 2**30
        e["config.npy"] = _npy(np.array(json.dumps(cfg)))
    _refused(_checkpoint(tmp_path, bigger_model), "needs|declares|more than the")


@pytest.mark.parametrize("entry", ["../../etc/passwd.npy", "/abs.npy", "param/../x.npy", "notes.txt",
                                   "param/enc.0.W.npy/../x.npy", "extra.npy"], ids=str)
def test_unexpected_or_odd_entry_names_are_refused(tmp_path, entry):
    def edit(e):
        e[entry] = _npy(np.zeros(1))
    _refused(_checkpoint(tmp_path, edit), "unexpected entr")


def test_other_format_version_and_bad_json(tmp_path):
    def version(e):
        e["format_version.npy"] = _npy(np.array(99, np.int64))
    _refused(_checkpoint(tmp_path, version), "format version 99")

    def config(e):
        e["config.npy"] = _npy(np.array('{"n_inputs": "six"'))
    _refused(_checkpoint(tmp_path, config), "configuration is invalid")

    def text_as_number(e):
        e["config.npy"] = _npy(np.array(3.5))
    _refused(_checkpoint(tmp_path, text_as_number), "must be text")


def test_zip_bombs_are_refused(tmp_path):
    def bomb(e):
        e["history.npy"] = _npy(np.array("x" * (8 << 20)))      # 32 MB of text, compresses ~1000x
    _refused(_checkpoint(tmp_path, bomb, compress=True), "expand")


def test_not_a_zip_and_a_single_npy(tmp_path):
    p = tmp_path / "x.npz"
    p.write_bytes(_npy(np.zeros(3)))                              # a .npy file under an .npz name
    _refused(p, "cannot read it as .npz")
    p.write_bytes(b"PK\x03\x04 garbage")
    _refused(p, "cannot read it as .npz")


# -------------------------------------------------------------------------------------------------
# the command line's data files
# -------------------------------------------------------------------------------------------------
def _run_train(tmp_path, capsys, data):
    with pytest.raises(SystemExit):
        cli.main(["train", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    return capsys.readouterr().err


def test_cli_refuses_object_npy_huge_headers_and_non_real_data(tmp_path, capsys):
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert "--data" in _run_train(tmp_path, capsys, obj)
    huge = tmp_path / "huge.npy"
    huge.write_bytes(_npy_with_header((2**20, 2**20), np.float32, b"\0" * 128))
    assert "--data" in _run_train(tmp_path, capsys, huge)
    text = tmp_path / "text.npy"
    np.save(text, np.array([["a", "b"]]))
    assert "real numbers" in _run_train(tmp_path, capsys, text)
