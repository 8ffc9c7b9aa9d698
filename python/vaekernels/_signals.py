"""Ctrl-C and state that must stay consistent.

Python raises KeyboardInterrupt between any two bytecodes of the main thread, so an interrupt could land
between an optimiser step and the counter that records it. A ``SigintGuard`` is installed once around a
long run (``VAE.fit``); inside it, ``guard.critical`` marks the short blocks that must not be cut in half:
a SIGINT that arrives in one is held back and delivered when it ends; anywhere else it is delivered at
once. Entering and leaving a critical block costs two attribute updates (no system call per step).
"""
from __future__ import annotations

import signal
import threading


class SigintGuard:
    """Context manager: while active (main thread only; elsewhere Python never delivers signals and it does
    nothing), SIGINT goes to the handler that was installed before (by default: KeyboardInterrupt), except
    inside ``critical`` blocks, where it waits for the block to end."""

    def __init__(self):
        self._depth = 0
        self._pending = None          # (frame,) of a SIGINT held back
        self._previous = None
        self._installed = False
        self.critical = _Critical(self)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        return False

    def _handle(self, signum, frame):
        if self._depth:
            self._pending = (frame,)
        else:
            self._deliver(frame)

    def _deliver(self, frame):
        previous = self._previous
        if callable(previous):
            previous(signal.SIGINT, frame)            # default_int_handler raises KeyboardInterrupt
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt


class _Critical:
    __slots__ = ("guard",)

    def __init__(self, guard):
        self.guard = guard

    def __enter__(self):
        self.guard._depth += 1

    def __exit__(self, *exc):
        g = self.guard
        g._depth -= 1
        if g._depth == 0 and g._pending is not None:
            (frame,), g._pending = g._pending, None
            g._deliver(frame)
        return False
