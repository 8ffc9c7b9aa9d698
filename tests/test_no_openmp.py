"""Results of a separate one-thread build: the CPU kernels compiled apart from the extension (a plain g++ build
of cpp/src/kernels.cpp and the thread team, run with OMP_NUM_THREADS=1) give the same bits as the installed
extension running two threads. (Until 0.2 the kernels ran on OpenMP and this test built them without it;
the thread team is now std::thread, cpp/src/parallel.hpp.) Together with tests/test_simd_levels.py (thread
counts 1-3, every SIMD level) this covers builds and thread counts without a second install."""
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
           os.path.join(ROOT, "cpp", "src", "layer_kernels.cpp"), os.path.join(ROOT, "cpp", "src", "parallel.cpp"),
           "-pthread", "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return exe


def _expected(dtype):
    vk._core.set_team_size(2)
    rows, cols = 300, 257
    mu = vk.randn((rows, cols), 11, 0, dtype=dtype)
    lv = vk.randn((rows, cols), 12, 5, dtype=dtype)
    x = vk.rand((rows, cols), 13, 3, dtype=dtype)
    z, kl = vk.latent_forward(mu, lv, 7, 9)
    dmu, dlv = vk.latent_backward(mu, mu, lv, 7, 9, kl_weight=0.5)
    lp, dl = vk.bernoulli_log_prob_and_grad(x, mu)
    kn = vk.kl_normal(mu, lv, x, lv)
    vk._core.set_team_size(0)
    return [mu, lv, x, z, kl, dmu, dlv, lp, dl, kn]


def test_kernels_of_a_one_thread_build_match_the_parallel_extension(driver):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([driver], capture_output=True, timeout=120, env=env).stdout
    offset = 0
    for dtype in (np.float32, np.float64):
        for i, want in enumerate(_expected(dtype)):
            got = np.frombuffer(out, dtype=dtype, count=want.size, offset=offset).reshape(want.shape)
            offset += want.nbytes
            # bitwise: the same IEEE operations in the same order, whatever the threading
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (np.dtype(dtype).name, i)
    assert offset == len(out)
