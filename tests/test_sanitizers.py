"""The C++ core under AddressSanitizer and UndefinedBehaviorSanitizer (and LeakSanitizer, part of ASan on
Linux): cpp/src (two instruction-set levels, two threads) and tests/sanitizers/driver.cpp, which runs every
kernel over edge-case shapes (zero rows or columns, rows across the 16 lanes and the 1024-element chunks,
above the parallel threshold), values (NaN, inf, subnormals, +-0, overflowing exponents), offsets up to the
end of the stream and every n_samples, and the MH sampler for every built-in target and a batch target
(random walk, independence, covariance adaptation, thinning, a NaN target, a progress report that throws)
and the MLPs (every activation, with and without parameter or input gradients, several GEMM blocks).
The thread team (cpp/src/parallel.cpp) also runs under ThreadSanitizer (tests/sanitizers/team_driver.cpp:
regions from several threads at once, nested regions, exceptions, tiny and large regions).
Any report fails: the driver exits non-zero and its stderr holds the sanitizer's diagnosis."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

SRC = os.path.join(REPO, "cpp", "src")
FLAGS = ["-std=c++17", "-O1", "-g", "-fno-omit-frame-pointer", "-ffp-contract=off", "-pthread",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-I", os.path.join(REPO, "cpp", "include"), "-I", SRC]
UNITS = [("kernels.cpp", "isa_scalar", "scalar"), ("kernels.cpp", "isa_baseline", "baseline"),
         ("layer_kernels.cpp", "isa_scalar", "scalar"), ("layer_kernels.cpp", "isa_baseline", "baseline"),
         ("mcmc.cpp", "isa_scalar", "scalar"), ("mcmc.cpp", "isa_baseline", "baseline"),
         ("dispatch.cpp", None, None), ("mcmc_setup.cpp", None, None), ("parallel.cpp", None, None),
         ("dense.cpp", None, None)]


@pytest.fixture(scope="module")
def sanitized_driver(tmp_path_factory):
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    work = tmp_path_factory.mktemp("sanitizers")
    probe = subprocess.run([cxx, "-fsanitize=address,undefined", "-x", "c++", "-", "-o", str(work / "probe")],
                           input="int main() { return 0; }", capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"this compiler cannot build with sanitizers: {probe.stderr[-500:]}")
    objects = []
    for i, (src, ns, level) in enumerate(UNITS):
        obj = str(work / f"u{i}.o")
        defs = [f"-DVK_ISA_NAMESPACE={ns}", f'-DVK_ISA_LEVEL_NAME="{level}"'] if ns else []
        extra = ["-fno-tree-vectorize"] if level == "scalar" else []
        r = subprocess.run([cxx, *FLAGS, *defs, *extra, "-c", os.path.join(SRC, src), "-o", obj],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        objects.append(obj)
    exe = str(work / "driver")
    r = subprocess.run([cxx, *FLAGS, os.path.join(REPO, "tests", "sanitizers", "driver.cpp"), *objects, "-o", exe],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return exe


def test_core_runs_clean_under_address_and_undefined_behaviour_sanitizers(sanitized_driver):
    env = dict(os.environ, OMP_NUM_THREADS="2",
               ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    r = subprocess.run([sanitized_driver], capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0 and "sanitized run complete" in r.stdout, r.stderr[-6000:]
    assert "runtime error" not in r.stderr and "ERROR: " not in r.stderr, r.stderr[-6000:]


@pytest.mark.slow
def test_extension_under_preloaded_sanitizers():
    """The _core extension built with ASan + UBSan, the runtimes preloaded, runs the kernel, bad-input, fuzz,
    thread, MCMC and gradient tests: any report aborts the run (tests/sanitizers/extension.py)."""
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    r = subprocess.run([sys.executable, os.path.join(REPO, "tests", "sanitizers", "extension.py")],
                       capture_output=True, text=True, timeout=2400, cwd=REPO)
    assert r.returncode == 0, (r.stdout[-3000:] + r.stderr[-6000:])
    assert " passed" in r.stdout and "runtime error" not in r.stderr


def test_thread_team_under_thread_sanitizer(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None or not sys.platform.startswith("linux"):
        pytest.skip("needs g++ on Linux")
    exe = str(tmp_path / "team")
    r = subprocess.run([cxx, "-std=c++17", "-O1", "-g", "-fsanitize=thread", "-pthread", "-I", SRC,
                        os.path.join(REPO, "tests", "sanitizers", "team_driver.cpp"), os.path.join(SRC, "parallel.cpp"),
                        "-o", exe], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and "tsan" in r.stderr.lower():
        pytest.skip(f"this compiler cannot build with ThreadSanitizer: {r.stderr[-500:]}")
    assert r.returncode == 0, r.stderr[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS="3", TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1")
    out = subprocess.run([exe], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0 and "team run complete" in out.stdout, out.stderr[-6000:]
    assert "WARNING: ThreadSanitizer" not in out.stderr, out.stderr[-6000:]
