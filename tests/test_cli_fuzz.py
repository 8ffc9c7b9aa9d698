"""The command line fuzzed: random combinations of the subcommands' flags (numbers at their edges, capped so
that a valid run stays short), data files of random bytes, truncated and crafted .npy / .npz files and
checkpoints, run in-process through ``cli.main(argv)``. Every run ends with exit status 0, 2 (usage or
bad input: one line on stderr) or 1 (a runtime failure such as divergence: one line), never a traceback
or another exception, within a time bound.

CI runs a fixed set of draws; ``python tests/fuzz/run_cli_fuzz.py --seconds 600`` draws for longer and
reports the executions and findings.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
import zipfile

import numpy as np
import pytest

from vaekernels import cli

TIME_BOUND = 60.0          # seconds one run may take (the valid runs are capped at a few epochs and samples)
CI_RUNS = 48

# Flag values: valid ones capped small, and edges (zero, negative, huge, not a number, empty).
INTS = ["0", "1", "2", "-1", "", "abc", "1.5", "99999999999999999999", "0x10", " 3", "nan"]
SMALL = {"--epochs": ["0", "1", "2"], "--latent": ["1", "2", "8"], "--k": ["1", "2", "16"],
         "--limit": ["1", "5", "50"], "--batch-size": ["1", "7", "100", "1000000000"],
         "--validation": ["1", "10", "1437", "1438", "100000"], "--seed": ["0", "1", "18446744073709551615"],
         "--gap-points": ["1", "2"], "--ais-steps": ["1", "5"], "--ais-chains": ["1", "3"],
         "--mcmc-points": ["0", "1"]}
FLOATS = ["1e-3", "0", "-1", "1e30", "1e-300", "nan", "inf", "-0", "abc", ""]
HIDDEN = ["none", "", "8", "4,4", "0", "-3", "3000000000", "100000000,100000000", "a,b", "8,", "1e3"]
CHOICES = {"--activation": ["tanh", "relu", "sigmoid", "softplus", "elu", "linear", "gelu"],
           "--likelihood": ["bernoulli", "gaussian", "poisson"], "--binarize": ["auto", "dynamic", "none", "once"],
           "--split": ["train", "test", "val"], "--gap-log-px": ["ais", "iwae", "exact"]}
TRAIN_FLAGS = ["--latent", "--hidden", "--activation", "--likelihood", "--binarize", "--epochs", "--batch-size",
               "--lr", "--seed", "--validation", "--out", "--no-progress"]
EVAL_FLAGS = ["--split", "--k", "--limit", "--binarize", "--seed", "--batch-size", "--json", "--gaps", "--gap-points",
              "--ais-steps", "--ais-chains", "--gap-log-px"]


def make_files(folder, rng):
    """The data files and checkpoints the draws choose from: valid, damaged and crafted ones."""
    import vaekernels as vk
    f = {}

    def path(name):
        return os.path.join(folder, name)
    X = (rng.random((40, 64)) < 0.3).astype(np.float32)
    np.save(path("ok.npy"), X)
    np.save(path("grey.npy"), rng.random((40, 64)))
    np.save(path("f64big.npy"), np.full((5, 64), 1e300))
    nan = X.copy()
    nan[2, 3] = np.nan
    np.save(path("nan.npy"), nan)
    np.save(path("narrow.npy"), X[:, :5])
    np.save(path("empty_rows.npy"), np.zeros((0, 64), np.float32))
    np.save(path("one_d.npy"), X[0])
    np.save(path("three_d.npy"), X.reshape(40, 8, 8))
    np.save(path("ints.npy"), X.astype(np.int16))
    np.save(path("complex.npy"), X.astype(np.complex64))
    np.save(path("objects.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(path("strings.npy"), np.array([["a"] * 64]))
    ok = open(path("ok.npy"), "rb").read()
    with open(path("truncated.npy"), "wb") as fh:
        fh.write(ok[:len(ok) // 2])
    with open(path("header_only.npy"), "wb") as fh:
        fh.write(ok[:80])
    with open(path("random.npy"), "wb") as fh:
        fh.write(rng.bytes(int(rng.integers(0, 3000))))
    open(path("zero.npy"), "wb").close()
    np.savez(path("archive"), X=X)
    os.replace(path("archive.npz"), path("archive.npy"))
    for name in ("ok.npy", "grey.npy", "f64big.npy", "nan.npy", "narrow.npy", "empty_rows.npy", "one_d.npy",
                 "three_d.npy", "ints.npy", "complex.npy", "objects.npy", "strings.npy", "truncated.npy",
                 "header_only.npy", "random.npy", "zero.npy", "archive.npy"):
        f[name] = path(name)
    f["missing.npy"] = path("missing.npy")
    f["folder.npy"] = path("folder.npy")
    os.makedirs(f["folder.npy"], exist_ok=True)

    model = vk.VAE(64, 2, hidden=(8,), seed=0)
    model.fit(X, epochs=1, progress=False)
    model.save(path("model.npz"))
    vk.VAE(64, 2, hidden=(8,), likelihood="gaussian").save(path("gaussian.npz"))
    vk.VAE(5, 2, hidden=()).save(path("narrow_model.npz"))
    good = open(path("model.npz"), "rb").read()
    ckpts = {"model.npz": good}
    ckpts["truncated.npz"] = good[:len(good) // 2]
    ckpts["random.npz"] = rng.bytes(2000)
    flips = bytearray(good)
    for _ in range(3):
        i = int(rng.integers(0, len(flips) * 8))
        flips[i // 8] ^= 1 << (i % 8)
    ckpts["flipped.npz"] = bytes(flips)
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for n in zin.namelist():
            zout.writestr(n, zin.read(n) if n != "history.npy" else _npy_text('{"epoch": "x"}'))
    ckpts["bad_history.npz"] = buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for n in zin.namelist():
            zout.writestr(n, zin.read(n) if n != "config.npy" else _npy_text("[" * 50000))
    ckpts["deep_config.npz"] = buf.getvalue()
    for name, data in ckpts.items():
        with open(path(name), "wb") as fh:
            fh.write(data)
        f[name] = path(name)
    f["gaussian.npz"], f["narrow_model.npz"] = path("gaussian.npz"), path("narrow_model.npz")
    f["missing.npz"] = path("missing.npz")
    with open(path("a_file"), "w") as fh:
        fh.write("x")
    f["a_file"] = path("a_file")
    return f


def _npy_text(text):
    buf = io.BytesIO()
    np.save(buf, np.array(text))
    return buf.getvalue()


def _data_choice(rng, files):
    names = [n for n in files if n.endswith(".npy")]
    pick = rng.random()
    if pick < 0.3:
        return "digits"
    if pick < 0.35:
        return rng.choice(["mnist:/no/such", "mnist:" + files["folder.npy"], "dgits", "", "x.csv"])
    return files[str(rng.choice(names))]


def _value(flag, rng, files, out_dir):
    if flag == "--hidden":
        return str(rng.choice(HIDDEN))
    if flag == "--lr":
        return str(rng.choice(FLOATS))
    if flag == "--out":
        return str(rng.choice([out_dir, files["a_file"], os.path.join(files["a_file"], "sub"), out_dir + "/x/y"]))
    if flag in CHOICES:
        return str(rng.choice(CHOICES[flag]))
    if flag in SMALL:
        return str(rng.choice(SMALL[flag] if rng.random() < 0.7 else INTS))
    raise AssertionError(flag)


_SWITCHES = ("--no-progress", "--json", "--gaps")


def random_argv(rng, files, out_dir):
    """One random command line: a subcommand, its required arguments (sometimes missing or wrong), and a
    random subset of its flags (sometimes repeated, sometimes another subcommand's)."""
    command = str(rng.choice(["train", "train", "eval", "eval", "demo", "bogus", ""]))
    argv = [command] if command else []
    if command == "eval":
        if rng.random() < 0.95:
            ck = [n for n in files if n.endswith(".npz")]
            argv.append(files[str(rng.choice(ck))])
    if command in ("train", "eval") and rng.random() < 0.95:
        argv += ["--data", _data_choice(rng, files)]
    flags = {"train": TRAIN_FLAGS, "eval": EVAL_FLAGS, "demo": ["--epochs", "--latent", "--k", "--mcmc-points",
                                                               "--gap-points", "--out", "--no-progress"]}.get(command, [])
    chosen = list(rng.choice(flags, size=min(len(flags), int(rng.integers(0, 6))), replace=False)) if flags else []
    if rng.random() < 0.1:
        chosen.append(str(rng.choice(TRAIN_FLAGS + EVAL_FLAGS)))          # a flag of another subcommand
    if command == "demo":   # the demo's defaults train 300 epochs and run AIS and MCMC: always cap them
        chosen = [c for c in chosen if c not in ("--epochs", "--k", "--out", "--mcmc-points", "--gap-points")]
        argv += ["--epochs", str(rng.choice(["0", "1", "2", "-1", "x"])), "--k", str(rng.choice(["1", "4"])),
                 "--out", out_dir, "--mcmc-points", "0", "--gap-points", "0"]
    if command == "train" and "--epochs" not in chosen:
        argv += ["--epochs", "1"]
    if command == "train" and "--out" not in chosen:
        argv += ["--out", out_dir]
    if command == "eval" and "--k" not in chosen:
        argv += ["--k", "4"]
    for flag in chosen:
        argv.append(flag)
        if flag not in _SWITCHES:
            argv.append(_value(flag, rng, files, out_dir))
    if "--no-progress" not in argv and command in ("train", "demo") and rng.random() < 0.9:
        argv.append("--no-progress")
    return argv


def run_one(argv):
    """(exit status, stderr, seconds, exception or None) of one in-process run."""
    err, out = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    exc = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = cli.main(argv)
        except SystemExit as e:
            code = e.code
        except BaseException as e:  # noqa: BLE001  (anything else escaping main is the finding)
            code, exc = None, e
    return code, err.getvalue(), time.perf_counter() - t0, exc


def check(argv, code, err, seconds, exc):
    """'' when the run ended as the command line promises, else what went wrong."""
    if exc is not None:
        return f"{type(exc).__name__} escaped main: {exc}"
    if code not in (0, 1, 2):
        return f"exit status {code!r}"
    if "Traceback" in err:
        return "a traceback on stderr"
    lines = [l for l in err.splitlines() if l.strip()]
    if code in (1, 2) and len(lines) != 1:
        return f"exit {code} with {len(lines)} lines on stderr: {err!r}"
    if seconds > TIME_BOUND:
        return f"took {seconds:.0f} s"
    return ""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(str(tmp_path_factory.mktemp("fuzz-files")), np.random.default_rng(1))


@pytest.mark.parametrize("draw", range(CI_RUNS))
def test_random_command_lines_end_cleanly(files, tmp_path, draw):
    argv = random_argv(np.random.default_rng([20261208, draw]), files, str(tmp_path / "out"))
    code, err, seconds, exc = run_one(argv)
    problem = check(argv, code, err, seconds, exc)
    assert not problem, f"vaekernels {' '.join(argv)}: {problem}"
