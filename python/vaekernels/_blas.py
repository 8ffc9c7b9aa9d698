"""Pin NumPy's BLAS to a fixed thread count for a block of code.

Why: OpenBLAS partitions a GEMM differently with 1 and 2 threads and the results differ in the last bits,
so a training run would depend on OMP_NUM_THREADS / OPENBLAS_NUM_THREADS. Pinning the count while
``VAE.fit`` runs makes the parameters bit-identical whatever the environment says: the MLPs' GEMMs then
run in fixed blocks, one BLAS thread each, side by side on the kernels' thread team (nn.MLP). (It also
keeps OpenBLAS's spinning worker threads from competing with that team.)

Calls OpenBLAS's own setter in the OpenBLAS libraries loaded into this process (Linux, found once through
/proc/self/maps; NumPy's wheels ship OpenBLAS), which costs microseconds; otherwise uses threadpoolctl when
installed (any BLAS, but it rescans the loaded libraries on every call).
``pinned_blas_threads`` reports whether pinning is possible here. ``blas_threads`` is safe to use from many
threads at once (the pins are counted) and affects the whole process while any pin is active.

``use_numpy_gemm`` hands the address of NumPy's own ``cblas_sgemm`` / ``cblas_dgemm`` to the C++ MLPs
(cpp/src/dense.cpp), which call it from the kernels' thread team on fixed blocks; no BLAS of our own is
shipped or linked. VAEKERNELS_GEMM=builtin (or a NumPy without a CBLAS found here) uses the plain built-in
GEMM instead: same results to rounding, slower.
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


# (sgemm, dgemm, 64-bit integers) symbol names, most specific first: NumPy's scipy-openblas wheels (ILP64),
# other OpenBLAS builds, then any LP64 CBLAS (MKL, a system OpenBLAS).
_GEMMS = [("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True), ("cblas_sgemm64_", "cblas_dgemm64_", True),
          ("scipy_cblas_sgemm", "scipy_cblas_dgemm", False), ("cblas_sgemm", "cblas_dgemm", False)]
_gemm_source = None


def _find_gemm():
    """(path, sgemm address, dgemm address, ilp64) of a CBLAS GEMM loaded with NumPy, or None."""
    import numpy  # noqa: F401  (NumPy's BLAS must be loaded before looking for it)
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if ".so" in p and any(k in p.lower() for k in ("blas", "mkl")) and p not in paths:
                    paths.append(p)
    except OSError:
        return None
    paths.sort(key=lambda p: "numpy" not in p)   # NumPy's own first
    for p in paths:
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        for s_name, d_name, ilp64 in _GEMMS:
            if hasattr(lib, s_name) and hasattr(lib, d_name):
                addr = [ctypes.cast(getattr(lib, n), ctypes.c_void_p).value for n in (s_name, d_name)]
                return p, addr[0], addr[1], ilp64
    return None


def use_numpy_gemm():
    """Connect the C++ MLPs to NumPy's GEMM once per process; returns a description of the GEMM in use."""
    global _gemm_source
    if _gemm_source is not None:
        return _gemm_source
    import os
    from . import _core
    with _lock:
        if _gemm_source is None:
            found = None if os.environ.get("VAEKERNELS_GEMM", "").lower() == "builtin" else _find_gemm()
            if found is None:
                _core.set_blas(0, 0, True)
                _gemm_source = "built-in GEMM"
            else:
                path, s, d, ilp64 = found
                _core.set_blas(s, d, ilp64)
                _gemm_source = f"{os.path.basename(path)} ({'ILP64' if ilp64 else 'LP64'} CBLAS)"
    return _gemm_source


def pinned_blas_threads():
    """True if ``blas_threads`` can pin NumPy's BLAS here."""
    if _openblas_handles():
        return True
    try:
        import threadpoolctl  # noqa: F401
        return True
    except ImportError:
        return False


# Active pins, a multiset of thread counts: while any pin is active the BLAS runs with the smallest of them;
# the counts from before the first pin are restored when the last one ends (so one thread finishing its
# evaluation never un-pins the BLAS under another thread that is still training).
_pins = []
_saved = None


def _set(n):
    """Set every loaded OpenBLAS (or, through threadpoolctl, any BLAS) to n threads; returns a restore()."""
    handles = _openblas_handles()
    if handles:
        before = [get() for _, get in handles]
        for setter, _ in handles:
            setter(int(n))

        def restore():
            for (setter, _), count in zip(handles, before):
                setter(count)
        return restore
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # no way to pin this BLAS: run as configured
        return lambda: None
    limits = ThreadpoolController().limit(limits=int(n), user_api="blas")
    return limits.restore_original_limits


def single_threaded():
    """``blas_threads(1)``, or nothing when a pin to one thread is already active (a training step's passes
    inside ``fit`` then cost no lock)."""
    if _pins and min(_pins) == 1:
        return contextlib.nullcontext()
    return blas_threads(1)


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with NumPy's BLAS limited to n threads (None: leave it alone); restores it after.

    Process-wide: the BLAS has one thread count for all threads, so while any thread is inside such a block,
    BLAS calls of every thread of the process run with the smallest count pinned. Safe from many threads:
    the count from before the first pin is restored only when the last pinning block ends."""
    global _saved
    if n is None:
        yield
        return
    n = int(n)
    with _lock:
        _pins.append(n)
        if len(_pins) == 1:
            _saved = _set(n)
        elif n < min(_pins[:-1]):
            _set(n)
    try:
        yield
    finally:
        with _lock:
            _pins.remove(n)
            if not _pins:
                _saved()
                _saved = None
            elif n < min(_pins):
                _set(min(_pins))
