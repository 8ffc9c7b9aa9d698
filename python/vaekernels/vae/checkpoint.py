"""Checkpoints: one atomic .npz file with parameters, Adam state, counters, configuration and history.
A mixin of ``VAE``."""
from __future__ import annotations

import json
import math
import os
import uuid
import zipfile

import numpy as np

__all__ = ["FORMAT_VERSION"]

FORMAT_VERSION = 1


class Checkpoints:
    """``save`` / ``load`` of ``VAE``."""

    def save(self, path):
        """Write parameters, Adam state, step/epoch counters, configuration and history to one .npz file.

        Atomic: the file is written to a temporary file in the same directory, flushed to disk, then
        renamed over ``path``, so a crash never leaves a half-written checkpoint under that name. The
        path is used as given (no ".npz" is appended). Returns the path.
        """
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        arrays = {"format_version": np.array(FORMAT_VERSION, np.int64),
                  "config": np.array(json.dumps(self.config())),
                  "history": np.array(json.dumps(self.history)),
                  "step": np.array(self.step, np.int64), "epoch": np.array(self.epoch, np.int64),
                  "adam_m": self._adam_m, "adam_v": self._adam_v}
        for name, value in self._params.values.items():
            arrays["param/" + name] = value
        # a unique name beside the target (same file system, so os.replace is atomic); "xb" creates it with
        # the usual umask permissions, unlike mkstemp's 0600
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            with open(tmp, "xb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path):
        """Rebuild a model saved by ``save``: parameters, Adam state, counters and history, so ``fit``
        continues exactly where it stopped. A missing file raises FileNotFoundError; a corrupt, truncated
        or inconsistent file, or one of another format version, raises ValueError.

        Untrusted files are safe to pass: nothing is unpickled, and every entry's header (name, dtype, shape)
        is checked against the model its configuration describes before any array is read, so object
        arrays, unexpected or oddly named entries and arrays larger than the file are refused by name
        without allocating them."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no checkpoint at {path!r}")
        bad = f"{path!r} is not a valid vaekernels checkpoint"
        headers = _entry_headers(path, bad)
        for key in ("format_version", "config", "step", "epoch", "adam_m", "adam_v"):
            if key not in headers:
                raise ValueError(f"{bad}: entry {key!r} is missing")
        with np.load(path, allow_pickle=False) as f:
            version = _scalar(f, headers, "format_version", bad)
            if version != FORMAT_VERSION:
                raise ValueError(f"{bad}: format version {version}, this vaekernels reads version {FORMAT_VERSION}")
            try:
                config = json.loads(_text(f, headers, "config", bad))
                if not isinstance(config, dict):
                    raise TypeError("the configuration is not a JSON object")
                layout = cls._layout(**config)
            except (TypeError, ValueError, json.JSONDecodeError) as e:
                raise ValueError(f"{bad}: its configuration is invalid ({e})") from e
            dtype = layout["dtype"]
            expected = {"param/" + name: shape for name, shape in layout["spec"]}
            n_params = sum(math.prod(shape) for shape in expected.values())
            expected.update(adam_m=(n_params,), adam_v=(n_params,))
            unexpected = sorted(k for k in headers if k not in expected and k not in _SCALAR_ENTRIES)
            if unexpected:
                raise ValueError(f"{bad}: unexpected entries {unexpected}")
            for key, shape in expected.items():
                if key not in headers:
                    raise ValueError(f"{bad}: entry {key!r} is missing")
                if headers[key] != (tuple(shape), dtype):
                    raise ValueError(f"{bad}: {key} has shape {headers[key][0]} and dtype {headers[key][1]}, its "
                                     f"configuration needs {tuple(shape)} and {dtype}")
            # every size is now the configuration's, and within the file's own size: reading is safe
            step, epoch = _scalar(f, headers, "step", bad), _scalar(f, headers, "epoch", bad)
            if step < 0 or epoch < 0:
                raise ValueError(f"{bad}: negative step or epoch count")
            history = {}
            if "history" in headers:
                try:
                    history = json.loads(_text(f, headers, "history", bad))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{bad}: its history is not valid JSON ({e})") from e
                if not isinstance(history, dict):
                    raise ValueError(f"{bad}: its history is not a JSON object")
            try:
                arrays = {k: f[k] for k in expected}
            except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
                raise ValueError(f"{bad}: cannot read its arrays ({type(e).__name__}: {e}); the file is "
                                 f"corrupt or truncated") from e
        model = cls(**config)
        try:
            model.set_params({k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")})
        except (TypeError, ValueError) as e:
            raise ValueError(f"{bad}: parameters do not match its configuration ({e})") from e
        model._adam_m[...] = arrays["adam_m"]
        model._adam_v[...] = arrays["adam_v"]
        model.step, model.epoch, model.history = step, epoch, history
        return model


_SCALAR_ENTRIES = {"format_version": "int", "config": "text", "history": "text", "step": "int", "epoch": "int"}
_MAX_TEXT = 64 << 20          # characters of JSON (configuration, history) read from a checkpoint at most
_MAX_EXPANSION = 64           # uncompressed size / file size: save() stores entries uncompressed (ratio 1)


def _entry_headers(path, bad):
    """{entry: (shape, dtype)} from the .npy headers of an .npz archive, read without reading the arrays.

    Refused: files that are not zip archives, entry names other than ``<key>.npy`` with a plain key, object
    dtypes, and arrays whose declared size exceeds the bytes stored for them (no declared shape can make
    loading allocate more than the file holds)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, zipfile.LargeZipFile) as e:
        raise ValueError(f"{bad}: cannot read it as .npz ({type(e).__name__}: {e}); the file is corrupt, "
                         f"truncated or not a checkpoint") from e
    headers = {}
    with zf:
        declared = sum(info.file_size for info in zf.infolist())
        if declared > max(_MAX_EXPANSION * os.path.getsize(path), 1 << 20):
            raise ValueError(f"{bad}: its entries expand to {declared} bytes, more than {_MAX_EXPANSION}x the "
                             f"file's size (checkpoints are stored uncompressed)")
        for info in zf.infolist():
            name = info.filename
            key = name[:-4] if name.endswith(".npy") else None
            if key is None or not _is_plain_key(key):
                raise ValueError(f"{bad}: unexpected entry name {name!r}")
            if key in headers:
                raise ValueError(f"{bad}: entry {key!r} appears twice")
            try:
                with zf.open(info) as fp:
                    version = np.lib.format.read_magic(fp)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
                    else:
                        raise ValueError(f".npy format version {version}")
                    header_bytes = fp.tell()
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                raise ValueError(f"{bad}: entry {key!r} has no valid .npy header ({e})") from e
            if dtype.hasobject:
                raise ValueError(f"{bad}: entry {key!r} holds Python objects (dtype {dtype}); checkpoints hold "
                                 f"numbers and text only")
            if math.prod(shape) * dtype.itemsize > info.file_size - header_bytes:
                raise ValueError(f"{bad}: entry {key!r} declares shape {shape} ({dtype}), more than the "
                                 f"{info.file_size - header_bytes} bytes stored for it")
            headers[key] = (tuple(shape), dtype)
    return headers


def _is_plain_key(key):
    """A checkpoint key: letters, digits, '_', '.', and 'param/' as the one allowed path component."""
    body = key[len("param/"):] if key.startswith("param/") else key
    return bool(body) and all(c.isalnum() or c in "._" for c in body) and not body.startswith(".")


def _scalar(f, headers, key, bad):
    shape, dtype = headers[key]
    if shape != () or dtype.kind not in "iu":
        raise ValueError(f"{bad}: entry {key!r} must be an integer scalar, got shape {shape} and dtype {dtype}")
    return int(f[key])


def _text(f, headers, key, bad):
    shape, dtype = headers[key]
    if shape != () or dtype.kind != "U" or dtype.itemsize // 4 > _MAX_TEXT:
        raise ValueError(f"{bad}: entry {key!r} must be text of at most {_MAX_TEXT} characters, got shape "
                         f"{shape} and dtype {dtype}")
    return str(f[key])
