"""Build the _core extension itself with AddressSanitizer + UndefinedBehaviorSanitizer and run a part of the
test suite against it, the sanitizer runtimes preloaded into the (uninstrumented) Python interpreter.

    python tests/sanitizers/extension.py [--build-dir DIR] [pytest arguments ...]

Exit status: pytest's (a sanitizer report aborts the run: non-zero). Used by tests/test_sanitizers.py
(slow); by hand it takes a few minutes. Needs g++ (or $CXX) with libasan and libubsan, and pip able to build
the package (scikit-build-core, pybind11 and cmake come from PyPI in pip's isolated build environment).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_TESTS = ["tests/test_kernels.py", "tests/test_bad_input.py", "tests/test_kernel_table.py",
                 "tests/test_mcmc.py", "tests/test_fuzz.py", "tests/test_threads.py", "tests/test_untrusted.py",
                 "tests/test_mcmc_vae.py", "tests/test_properties.py", "tests/test_fused.py",
                 "tests/test_gradients.py", "tests/test_adam.py", "tests/test_random.py"]
FLAGS = "-fsanitize=address,undefined -fno-omit-frame-pointer"
# Import the sanitized build, not the installed package (an editable install's import hook included).
BOOT = """
import sys
sys.meta_path = [f for f in sys.meta_path if "scikit" not in repr(f).lower() and "editable" not in repr(f).lower()]
sys.path.insert(0, {target!r})
import vaekernels
assert vaekernels.__file__.startswith({target!r}), vaekernels.__file__
import pytest
sys.exit(pytest.main({args!r}))
"""


def runtime(cxx, name):
    return subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True, check=True).stdout.strip()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=None, help="reuse a build folder (default: a temporary one)")
    args, pytest_args = ap.parse_known_args(argv)
    cxx = os.environ.get("CXX", "g++")
    work = tempfile.mkdtemp(prefix="vk-sanitized-")
    target = os.path.join(work, "site")
    build_dir = args.build_dir or os.path.join(work, "build")
    env = dict(os.environ, CMAKE_ARGS=(f"-DVAEKERNELS_CUDA=OFF -DCMAKE_CXX_FLAGS='{FLAGS}' "
                                       f"-DCMAKE_MODULE_LINKER_FLAGS='{FLAGS}' -DCMAKE_SHARED_LINKER_FLAGS='{FLAGS}'"))
    env.pop("VAEKERNELS_JAX", None)
    build = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target,
                            "-C", f"build-dir={build_dir}", REPO], env=env, cwd=REPO)
    if build.returncode != 0:
        print("building the sanitized extension failed", file=sys.stderr)
        return build.returncode
    run_env = dict(os.environ,
                   LD_PRELOAD=f"{runtime(cxx, 'libasan.so')}:{runtime(cxx, 'libubsan.so')}",
                   # Python's own allocations are not instrumented and are freed lazily: no leak report for
                   # them; an allocation the fuzzer asks for beyond memory returns NULL (MemoryError) as usual
                   ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1",
                   UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    tests = pytest_args or (["-q", "-p", "no:cacheprovider"] + DEFAULT_TESTS)
    code = BOOT.format(target=target, args=tests)
    return subprocess.run([sys.executable, "-c", code], env=run_env, cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
