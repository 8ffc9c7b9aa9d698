"""Results without OpenMP: the CPU kernels compiled with no OpenMP at all (a g++ build of cpp/src/kernels.cpp
without -fopenmp, as on a compiler that lacks it) give the same bits as the installed, OpenMP-parallel
extension. Together with tests/test_simd_levels.py (thread counts 1-3, every SIMD level) this covers the
build with and without OpenMP without a second install of the package."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import vaekernels as vk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH to build the OpenMP-free driver")
    exe = str(tmp_path_factory.mktemp("noomp") / "driver")
    cmd = [cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
           "-DVK_ISA_NAMESPACE=isa_baseline", '-DVK_ISA_LEVEL_NAME="baseline"',
           "-I", os.path.join(ROOT, "cpp", "include"), "-I", os.path.join(ROOT, "cpp", "src"),
           os.path.join(ROOT, "tests", "openmp_free", "driver.cpp"), os.path.join(ROOT, "cpp", "src", "kernels.cpp"),
           "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return exe


def _expected(dtype):
    rows, cols = 300, 257
    mu = vk.randn((rows, cols), 11, 0, dtype=dtype)
    lv = vk.randn((rows, cols), 12, 5, dtype=dtype)
    x = vk.rand((rows, cols), 13, 3, dtype=dtype)
    z, kl = vk.latent_forward(mu, lv, 7, 9)
    dmu, dlv = vk.latent_backward(mu, mu, lv, 7, 9, kl_weight=0.5)
    lp, dl = vk.bernoulli_log_prob_and_grad(x, mu)
    kn = vk.kl_normal(mu, lv, x, lv)
    return [mu, lv, x, z, kl, dmu, dlv, lp, dl, kn]


def test_kernels_without_openmp_match_the_parallel_build(driver):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    out = subprocess.run([driver], capture_output=True, timeout=120, env=env).stdout
    offset = 0
    for dtype in (np.float32, np.float64):
        for i, want in enumerate(_expected(dtype)):
            got = np.frombuffer(out, dtype=dtype, count=want.size, offset=offset).reshape(want.shape)
            offset += want.nbytes
            # bitwise: the same IEEE operations in the same order, whatever the threading
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (np.dtype(dtype).name, i)
    assert offset == len(out)
