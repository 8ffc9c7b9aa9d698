"""Pin NumPy's BLAS to a fixed thread count for a block of code.

Why: OpenBLAS partitions a GEMM differently with 1 and 2 threads and the results differ in the last bits,
so a training run would depend on OMP_NUM_THREADS / OPENBLAS_NUM_THREADS. Pinning the count while
``VAE.fit`` runs makes the parameters bit-identical whatever the environment says. (It also keeps
OpenBLAS's spinning worker threads from competing with the OpenMP threads of the vaekernels kernels
on a small machine, which otherwise costs far more than the parallel GEMM gains at these sizes.)

Calls OpenBLAS's own setter in the OpenBLAS libraries loaded into this process (Linux, found once through
/proc/self/maps; NumPy's wheels ship OpenBLAS), which costs microseconds; otherwise uses threadpoolctl when
installed (any BLAS, but it rescans the loaded libraries on every call).
``pinned_blas_threads`` reports whether pinning is possible here.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading

_lock = threading.Lock()
_handles = None
_SETTERS = [("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
            ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
            ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
            ("openblas_set_num_threads", "openblas_get_num_threads")]


def _openblas_handles():
    """(set, get) ctypes function pairs of every OpenBLAS loaded in this process (cached)."""
    global _handles
    if _handles is not None:
        return _handles
    import numpy  # noqa: F401  (make sure NumPy's BLAS is loaded before looking for it)
    paths = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if "openblas" in p.lower() and ".so" in p:
                    paths.add(p)
    except OSError:
        pass
    handles = []
    for p in sorted(paths):
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        for set_name, get_name in _SETTERS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                handles.append((setter, getter))
                break
    _handles = handles
    return handles


def pinned_blas_threads():
    """True if ``blas_threads`` can pin NumPy's BLAS here."""
    if _openblas_handles():
        return True
    try:
        import threadpoolctl  # noqa: F401
        return True
    except ImportError:
        return False


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with NumPy's BLAS limited to n threads (None: leave it alone); restores it after."""
    if n is None:
        yield
        return
    handles = _openblas_handles()
    if not handles:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # no way to pin this BLAS: run as configured
            yield
            return
        with threadpool_limits(limits=int(n), user_api="blas"):
            yield
        return
    with _lock:
        before = [get() for _, get in handles]
        for (setter, _), count in zip(handles, before):
            if count != int(n):
                setter(int(n))
    try:
        yield
    finally:
        with _lock:
            for (setter, _), count in zip(handles, before):
                if count != int(n):
                    setter(count)
