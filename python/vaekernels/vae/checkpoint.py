"""Checkpoints: one atomic .npz file with parameters, Adam state, counters, configuration and history.
A mixin of ``VAE``."""
from __future__ import annotations

import json
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
        or inconsistent file, or one of another format version, raises ValueError."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no checkpoint at {path!r}")
        bad = f"{path!r} is not a valid vaekernels checkpoint"
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, zipfile.LargeZipFile) as e:
            raise ValueError(f"{bad}: cannot read it as .npz ({type(e).__name__}: {e}); the file is "
                             f"corrupt or truncated") from e
        if not isinstance(data, dict):
            raise ValueError(f"{bad}: it is a single .npy array, not an .npz archive")
        for key in ("format_version", "config", "step", "epoch", "adam_m", "adam_v"):
            if key not in data:
                raise ValueError(f"{bad}: entry {key!r} is missing")
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(f"{bad}: format version {version}, this vaekernels reads version {FORMAT_VERSION}")
        try:
            config = json.loads(str(data["config"]))
            model = cls(**config)
        except (TypeError, ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"{bad}: its configuration is invalid ({e})") from e
        params = {k[len("param/"):]: v for k, v in data.items() if k.startswith("param/")}
        try:
            model.set_params(params)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{bad}: parameters do not match its configuration ({e})") from e
        for key, dst in (("adam_m", model._adam_m), ("adam_v", model._adam_v)):
            a = data[key]
            if a.shape != dst.shape or a.dtype != dst.dtype:
                raise ValueError(f"{bad}: {key} has shape {a.shape} and dtype {a.dtype}, expected "
                                 f"{dst.shape} and {dst.dtype}")
            dst[...] = a
        model.step, model.epoch = int(data["step"]), int(data["epoch"])
        if model.step < 0 or model.epoch < 0:
            raise ValueError(f"{bad}: negative step or epoch count")
        if "history" in data:
            try:
                model.history = json.loads(str(data["history"]))
            except json.JSONDecodeError as e:
                raise ValueError(f"{bad}: its history is not valid JSON ({e})") from e
        return model


