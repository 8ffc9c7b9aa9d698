"""The ``vaekernels`` command line (``main``), the demo and the kernel tour."""
from .main import build_parser, main

__all__ = ["main", "build_parser"]
