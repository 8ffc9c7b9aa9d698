"""How to use two cores for the VAE's GEMMs without giving up bit-identical results across thread counts.

Every variant computes the same fixed blocks (so its bits do not depend on the thread count), each block on
a single-threaded GEMM of NumPy's OpenBLAS:
  numpy 1 thread      np.dot on the whole matrix, BLAS pinned to one thread (vaekernels 0.1's training step)
  python threads      two blocks as np.dot calls (which release the GIL) on a 2-thread ThreadPoolExecutor:
                      forward by rows (np.dot's out= must be C-contiguous), backward dW beside dx
  vaekernels C++      the blocks on the kernels' thread team from C++ (nn.MLP / cpp/src/dense.cpp), with the
                      bias added in the same pass
Shapes: the layers of the MNIST VAE (784-200-200-50, batch 100), forward (x W + b) and the two backward GEMMs
(x^T d, d W^T). Reported: median microseconds per layer pass.

Usage: python benchmarks/bench_gemm_blocks.py [--repeat 300]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import time

import numpy as np

from vaekernels import _blas, _core

LAYERS = [(784, 200), (200, 200), (200, 100), (50, 200), (200, 784)]
BATCH = 100


def median_us(fn, repeat):
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return 1e6 * float(np.median(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=300)
    args = ap.parse_args()
    _blas.use_numpy_gemm()
    pool = cf.ThreadPoolExecutor(2)
    rng = np.random.default_rng(0)
    print(f"GEMM: {_blas.use_numpy_gemm()}; team of {_core.team_size()} threads\n")
    print("| layer | pass | numpy 1 thread | python threads (2) | vaekernels C++ (2) | C++ / numpy |")
    print("| --- | --- | --- | --- | --- | --- |")
    with _blas.blas_threads(1):
        for k, n in LAYERS:
            x = rng.standard_normal((BATCH, k), dtype=np.float32)
            W = rng.standard_normal((k, n), dtype=np.float32)
            b = rng.standard_normal(n, dtype=np.float32)
            d = rng.standard_normal((BATCH, n), dtype=np.float32)
            y, dW, db, dx = (np.empty((BATCH, n), np.float32), np.empty_like(W), np.empty_like(b),
                             np.empty_like(x))

            def fwd_numpy():
                np.dot(x, W, out=y)
                np.add(y, b, out=y)

            def fwd_threads():
                def part(r0, r1):   # row blocks: np.dot wants a C-contiguous out=
                    np.dot(x[r0:r1], W, out=y[r0:r1])
                    np.add(y[r0:r1], b, out=y[r0:r1])
                list(pool.map(lambda r: part(*r), [(0, BATCH // 2), (BATCH // 2, BATCH)]))

            def fwd_cpp():
                _core.mlp_forward(x, [W], [b], [y], 0)

            def bwd_numpy():
                np.dot(x.T, d, out=dW)
                np.add.reduce(d, axis=0, out=db)
                np.dot(d, W.T, out=dx)

            def bwd_threads():
                def wgrad():
                    np.dot(x.T, d, out=dW)
                    np.add.reduce(d, axis=0, out=db)

                def igrad():
                    np.dot(d, W.T, out=dx)
                list(pool.map(lambda f: f(), [wgrad, igrad]))

            def bwd_cpp():
                _core.mlp_backward(x, [W], [], d, [], [dW], [db], dx, 0, 1.0)

            for name, fs in (("forward", (fwd_numpy, fwd_threads, fwd_cpp)),
                             ("backward", (bwd_numpy, bwd_threads, bwd_cpp))):
                t = [median_us(f, args.repeat) for f in fs]
                print(f"| {k}x{n} | {name} | {t[0]:.0f} us | {t[1]:.0f} us | {t[2]:.0f} us | {t[2] / t[0]:.2f} |")
    pool.shutdown()


if __name__ == "__main__":
    main()
