"""Fuzz every public kernel for longer than the test suite does, and report executions and findings.

    python tests/fuzz/run_fuzz.py [--seconds 600]          # hypothesis, random search, fresh seeds
    python tests/fuzz/run_fuzz.py --atheris [--seconds 600] # coverage-guided (pip install atheris)

The properties are those of tests/test_fuzz.py: every call returns or raises TypeError / ValueError
(RuntimeError only for a GPU request without a GPU). A finding is printed with the failing example and the
run exits with status 1; a crash (signal) ends the run with the fuzzer's report.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))          # tests/: conftest-free import of test_fuzz


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--atheris", action="store_true", help="coverage-guided with atheris (libFuzzer)")
    args = ap.parse_args()

    if args.atheris:
        import atexit

        import atheris
        with atheris.instrument_imports():        # coverage feedback from the package's Python code
            import vaekernels  # noqa: F401
            import test_fuzz as F
        start = time.time()
        atexit.register(lambda: print(f"executions: {F.EXECUTIONS[0]} calls in {time.time() - start:.0f} s "
                                      f"(libFuzzer units above)", flush=True))
        atheris.Setup([sys.argv[0], f"-max_total_time={int(args.seconds)}", "-print_final_stats=1"],
                      F.fuzz_any_kernel.hypothesis.fuzz_one_input)
        atheris.Fuzz()
        return 0

    import test_fuzz as F
    from hypothesis import HealthCheck, given, settings
    findings, start, rounds = [], time.time(), 0
    while time.time() - start < args.seconds:
        rounds += 1
        prop = settings(max_examples=500, deadline=None, database=None, derandomize=False,
                        suppress_health_check=list(HealthCheck))(given(F.ANY_CALL)(lambda kc: F.check_call(*kc)))
        try:
            prop()
        except Exception as e:  # noqa: BLE001  (a finding: report it and carry on with a fresh seed)
            findings.append(f"{type(e).__name__}: {e}")
            print(f"FINDING {len(findings)}: {type(e).__name__}: {str(e)[:2000]}", flush=True)
        print(f"round {rounds}: {F.EXECUTIONS[0]} executions, {len(findings)} findings, "
              f"{time.time() - start:.0f} s", flush=True)
    print(f"executions: {F.EXECUTIONS[0]}, findings: {len(findings)}, seconds: {time.time() - start:.0f}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
