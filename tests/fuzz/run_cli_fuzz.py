"""Fuzz the command line for longer than the test suite does, and report executions and findings.

    python tests/fuzz/run_cli_fuzz.py [--seconds 600] [--seed S]

The property is tests/test_cli_fuzz.py's: every run of ``cli.main(argv)`` on a random command line (flags
at their edges, damaged and crafted files) ends with exit status 0, 1 or 2, one line on stderr for 1 and 2,
no traceback, within the time bound. Each finding is printed with its command line; the run exits with
status 1 if there was any.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))          # tests/: conftest-free import of test_cli_fuzz


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    import test_cli_fuzz as F
    findings, codes = [], collections.Counter()
    start, n = time.time(), 0
    with tempfile.TemporaryDirectory() as tmp:
        files = F.make_files(tmp, np.random.default_rng(args.seed))
        while time.time() - start < args.seconds:
            rng = np.random.default_rng([args.seed, n])
            out = os.path.join(tmp, f"out{n % 4}")
            argv = F.random_argv(rng, files, out)
            code, err, seconds, exc = F.run_one(argv)
            codes[code] += 1
            problem = F.check(argv, code, err, seconds, exc)
            if problem:
                findings.append((argv, problem))
                print(f"FINDING: vaekernels {' '.join(argv)}\n  {problem}", flush=True)
            n += 1
    print(f"executions: {n} command lines in {time.time() - start:.0f} s (seed {args.seed}); exit statuses "
          f"{dict(sorted(codes.items(), key=str))}; findings: {len(findings)}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
