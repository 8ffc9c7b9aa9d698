"""Checkpoints: one atomic .npz file with parameters, Adam state, counters, configuration and history.
A mixin of ``VAE``."""
from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import uuid
import zipfile
import zlib

import numpy as np

__all__ = ["FORMAT_VERSION", "HISTORY_KEYS", "history_problem"]

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
        continues exactly where it stopped. A missing file raises FileNotFoundError; any other file that is
        not a whole, consistent checkpoint of this format version raises ValueError (corrupt, truncated,
        crafted, damaged by a single flipped bit, or of another version).

        Untrusted files are safe to pass: nothing is unpickled; the archive's declared sizes are checked
        before anything is decompressed; only stored or deflated, unencrypted members are read, each in full
        so that zip's CRC-32 catches damaged data; every entry's header (name, dtype, shape) is checked
        against the model its configuration describes before any array is built; the configuration and
        history JSON are bounded in size and nesting and checked against their schema."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no checkpoint at {path!r}")
        bad = f"{path!r} is not a valid vaekernels checkpoint"
        entries = _read_entries(path, bad)
        headers = {k: (shape, dtype) for k, (shape, dtype, _) in entries.items()}
        for key in ("format_version", "config", "step", "epoch", "adam_m", "adam_v"):
            if key not in headers:
                raise ValueError(f"{bad}: entry {key!r} is missing")
        version = _scalar(entries, "format_version", bad)
        if version != FORMAT_VERSION:
            raise ValueError(f"{bad}: format version {version}, this vaekernels reads version {FORMAT_VERSION}")
        config = _json(entries, "config", bad)
        try:
            if not isinstance(config, dict):
                raise TypeError("the configuration is not a JSON object")
            layout = cls._layout(**config)
        except (TypeError, ValueError) as e:
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
        step, epoch = _scalar(entries, "step", bad), _scalar(entries, "epoch", bad)
        if step < 0 or epoch < 0:
            raise ValueError(f"{bad}: negative step or epoch count")
        history = _json(entries, "history", bad) if "history" in headers else {}
        problem = history_problem(history)
        if problem:
            raise ValueError(f"{bad}: its history is invalid ({problem})")
        arrays = {k: _array(entries, k) for k in expected}
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
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
# What reading a damaged or crafted archive can raise from zipfile, zlib and struct: all mean "not a
# valid checkpoint" (a flipped bit reaches most of them: a compression method zipfile lacks is a
# NotImplementedError, an encryption flag a RuntimeError, a bad CRC a BadZipFile, a header field a
# struct.error or UnicodeDecodeError).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
               RuntimeError, struct.error, zlib.error, UnicodeDecodeError, OverflowError, KeyError, IndexError)
HISTORY_KEYS = ("epoch", "elbo", "recon", "kl", "kl_weight", "lr", "seconds", "val_elbo", "val_recon", "val_kl")


def history_problem(history):
    """What is wrong with a training history (``model.history``), or "": a dict of lists of numbers (``fit``
    writes the keys of ``HISTORY_KEYS``; ``epoch`` entries are integers >= 0). ``load`` refuses others; ``fit`` checks it before
    any work, so a history it cannot extend never fails an epoch half-way through."""
    if not isinstance(history, dict):
        return f"expected a JSON object of lists, got {type(history).__name__}"
    for key, values in history.items():
        if not isinstance(values, list):
            return f"{key!r} must be a list of numbers, got {type(values).__name__}"
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (
                    key == "epoch" and not (isinstance(v, int) and v >= 0)):
                want = "an integer >= 0" if key == "epoch" else "a number"
                return f"{key!r} entries must each be {want}, got {v!r}"
    return ""


def _read_entries(path, bad):
    """{entry: (shape, dtype, raw .npy bytes)} of an .npz archive, every member read in full (CRC-checked).

    Refused before anything is decompressed: files that are not zip archives, declared sizes beyond
    ``_MAX_EXPANSION`` times the file, encrypted members, compression methods other than stored and deflated,
    entry names other than ``<key>.npy`` with a plain key, duplicates. Then, per member: a valid .npy header,
    no object dtype, and exactly the bytes its shape and dtype declare."""
    raw = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            declared = sum(info.file_size for info in infos)
            if declared > max(_MAX_EXPANSION * os.path.getsize(path), 1 << 20):
                raise _Refused(f"its entries expand to {declared} bytes, more than {_MAX_EXPANSION}x the file's "
                               f"size (checkpoints are stored uncompressed)")
            for info in infos:
                name = info.filename
                key = name[:-4] if name.endswith(".npy") else None
                if key is None or not _is_plain_key(key):
                    raise _Refused(f"unexpected entry name {name!r}")
                if key in raw:
                    raise _Refused(f"entry {key!r} appears twice")
                if info.flag_bits & 0x1:
                    raise _Refused(f"entry {key!r} is encrypted")
                if info.compress_type not in _ZIP_METHODS:
                    raise _Refused(f"entry {key!r} uses zip compression method {info.compress_type}; checkpoints "
                                   f"are stored or deflated")
                raw[key] = zf.read(info)        # the whole member: a damaged one fails zip's CRC-32 check
    except _Refused as e:
        raise ValueError(f"{bad}: {e}") from None
    except _ZIP_ERRORS as e:
        raise ValueError(f"{bad}: cannot read it as .npz ({type(e).__name__}: {e}); the file is corrupt, "
                         f"truncated or not a checkpoint") from None
    entries = {}
    for key, data in raw.items():
        fp = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f".npy format version {version}")
        except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
            raise ValueError(f"{bad}: entry {key!r} has no valid .npy header ({e})") from None
        if dtype.hasobject:
            raise ValueError(f"{bad}: entry {key!r} holds Python objects (dtype {dtype}); checkpoints hold "
                             f"numbers and text only")
        stored = len(data) - fp.tell()
        if math.prod(shape) * dtype.itemsize != stored:
            raise ValueError(f"{bad}: entry {key!r} declares shape {shape} ({dtype}), but {stored} bytes are "
                             f"stored for it")
        entries[key] = (tuple(shape), dtype, data)
    return entries


class _Refused(Exception):
    """A structural refusal inside the archive reader (kept apart from zipfile's own errors)."""


def _array(entries, key):
    """The entry's array (its header and size already checked by ``_read_entries``)."""
    return np.lib.format.read_array(io.BytesIO(entries[key][2]), allow_pickle=False)


def _is_plain_key(key):
    """A checkpoint key: letters, digits, '_', '.', and 'param/' as the one allowed path component."""
    body = key[len("param/"):] if key.startswith("param/") else key
    return bool(body) and all(c.isalnum() or c in "._" for c in body) and not body.startswith(".")


def _scalar(entries, key, bad):
    shape, dtype, _ = entries[key]
    if shape != () or dtype.kind not in "iu":
        raise ValueError(f"{bad}: entry {key!r} must be an integer scalar, got shape {shape} and dtype {dtype}")
    return int(_array(entries, key))


_MAX_JSON_DEPTH = 32          # configuration and history nest 2 levels deep


def _json(entries, key, bad):
    """The entry's JSON text, parsed: bounded in size and nesting (deeper text is refused before parsing)."""
    shape, dtype, _ = entries[key]
    if shape != () or dtype.kind != "U" or dtype.itemsize // 4 > _MAX_TEXT:
        raise ValueError(f"{bad}: entry {key!r} must be text of at most {_MAX_TEXT} characters, got shape "
                         f"{shape} and dtype {dtype}")
    text = str(_array(entries, key))
    what = {"config": "configuration"}.get(key, key)
    if _nesting(text) > _MAX_JSON_DEPTH:
        raise ValueError(f"{bad}: its {what} is invalid (its JSON nests deeper than {_MAX_JSON_DEPTH} levels)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{bad}: its {what} is invalid (not valid JSON: {e})") from None


_NOT_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[^\[\]{}"]+')


def _nesting(text):
    """The deepest bracket nesting of JSON text, strings skipped (an upper bound for malformed text)."""
    depth = deepest = 0
    for c in _NOT_BRACKETS.sub("", text):
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest
