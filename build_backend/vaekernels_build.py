"""The package's build backend: scikit-build-core, plus one opt-in.

``VAEKERNELS_JAX=1 pip install .`` (or ``pip install . -C cmake.define.VAEKERNELS_JAX=ON``) builds the XLA FFI
module vaekernels._jax. Its headers come with the jax wheel, and pip builds in an isolated environment, so
jax is added to that environment's requirements here, only on request: a plain ``pip install .`` builds
exactly as scikit-build-core alone would. JAX_REQUIREMENT is the range the JAX module was tested with.
"""
from __future__ import annotations

import os

from scikit_build_core import build as _skb
from scikit_build_core.build import *  # noqa: F401,F403  (every PEP 517 / 660 hook, unchanged unless below)

JAX_REQUIREMENT = "jax[cpu]>=0.10.2,<0.11"
_ON = ("1", "on", "true", "yes")


def _wants_jax(config_settings):
    if os.environ.get("VAEKERNELS_JAX", "").strip().lower() in _ON:
        return True
    value = (config_settings or {}).get("cmake.define.VAEKERNELS_JAX", "")
    return str(value).strip().lower() in _ON


def _settings(config_settings):
    """The config settings, with the JAX module requested from CMake when the environment asks for it."""
    settings = dict(config_settings or {})
    if _wants_jax(settings):
        settings["cmake.define.VAEKERNELS_JAX"] = "ON"
    return settings


def get_requires_for_build_wheel(config_settings=None):
    reqs = list(_skb.get_requires_for_build_wheel(config_settings))
    return reqs + [JAX_REQUIREMENT] if _wants_jax(config_settings) else reqs


def get_requires_for_build_editable(config_settings=None):
    reqs = list(_skb.get_requires_for_build_editable(config_settings))
    return reqs + [JAX_REQUIREMENT] if _wants_jax(config_settings) else reqs


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _skb.build_wheel(wheel_directory, _settings(config_settings), metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _skb.build_editable(wheel_directory, _settings(config_settings), metadata_directory)
