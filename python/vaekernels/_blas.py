"""Pin NumPy's BLAS to a fixed thread count for a block of code.

Why: OpenBLAS partitions a GEMM differently with 1 and 2 threads and the results differ in the last bits,
so a training run would depend on OMP_NUM_THREADS / OPENBLAS_NUM_THREADS. Pinning the count while
``VAE.fit`` runs makes the parameters bit-identical whatever the environment says. (It also keeps
OpenBLAS's spinning worker threads from competing with the OpenMP threads of the vaekernels kernels
on a small machine, which otherwise costs far more than the parallel GEMM gains at these sizes.)

Uses threadpoolctl when installed (any BLAS); otherwise calls OpenBLAS's own setter in the OpenBLAS
libraries loaded into this process (Linux, found through /proc/self/maps), as NumPy's wheels ship it.
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
    try:
        import threadpoolctl  # noqa: F401
        return True
    except ImportError:
        return bool(_openblas_handles())


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with NumPy's BLAS limited to n threads (None: leave it alone); restores it after."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=int(n), user_api="blas"):
            yield
        return
    with _lock:
        handles = _openblas_handles()
        before = [get() for _, get in handles]
        for setter, _ in handles:
            setter(int(n))
    try:
        yield
    finally:
        with _lock:
            for (setter, _), count in zip(handles, before):
                setter(count)
