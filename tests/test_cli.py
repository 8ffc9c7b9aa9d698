"""The command line: `vaekernels demo` end to end (few epochs), train/eval round trip, argument errors,
bare `vaekernels` printing its usage, and the kernel tour."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vaekernels import cli


def test_demo_end_to_end(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "vaekernels", "demo", "--epochs", "3", "--k", "50", "--out",
                        str(out), "--no-progress", "--mcmc-points", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "ELBO" in r.stdout and "IWAE k=50" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    for name in ("loss.png", "reconstructions.png", "samples.png", "latent.png", "model.npz"):
        assert (out / name).stat().st_size > 1000, name
        assert (out / name).read_bytes()[:4] in (b"\x89PNG", b"PK\x03\x04")
    assert summary["epochs"] == 3 and len(summary["history"]["elbo"]) == 3
    # the numbers are log-likelihood bounds of binarised 8x8 digits: negative and > -64 log 2 = -44.4 is
    # not guaranteed after 3 epochs, but they must be finite and the IWAE may not fall far below the ELBO
    for key in ("train_elbo", "test_elbo", "train_iwae", "test_iwae"):
        assert np.isfinite(summary[key]) and summary[key] < 0
    assert summary["test_iwae"] > summary["test_elbo"] - 0.5
    # the MCMC section: MH draws of p(z|x) for one test digit, compared with q(z|x)
    assert "MCMC vs q(z|x) on 1 data points" in r.stdout
    assert (out / "mcmc_posterior.png").read_bytes()[:4] == b"\x89PNG"
    m = summary["mcmc"]
    assert m["n_x"] == 1 and summary["files"]["mcmc"] == "mcmc_posterior.png"
    # KL(q || p(z|x)) >= 0 up to Monte Carlo error; an acceptance rate is a probability
    assert m["kl_q_p"][0] > -0.05 and 0.0 <= m["independence_accept"][0] <= 1.0


def test_run_demo_returns_model_and_summary(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from vaekernels.cli.demo import run_demo
    lines = []
    summary, model, data = run_demo(tmp_path, epochs=1, k=10, progress=False, print_fn=lines.append)
    assert model.epoch == 1 and summary["n_params"] == model.n_params
    assert data["X_test"].shape[1] == 64 and len(data["y_test"]) == len(data["X_test"])
    assert any("IWAE" in line for line in lines)


def test_train_and_eval_round_trip(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = (rng.uniform(0, 1, (200, 12)) > 0.5).astype(np.float32)
    data = tmp_path / "x.npy"
    np.save(data, X)
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(data), "--latent", "3", "--hidden", "16", "--epochs", "2",
                     "--batch-size", "50", "--lr", "0.003", "--validation", "40", "--out", str(out),
                     "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "validation ELBO" in text and "binarisation: none" in text  # data already binary
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["history"]["elbo"]) == 2
    assert cli.main(["eval", str(out / "model.npz"), "--data", str(data), "--k", "20", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["rows"] == 200 and res["k"] == 20 and not res["binarized_once"]
    assert res["iwae"] >= res["elbo"] - 3 * res["elbo_se"]  # IWAE(k) >= ELBO up to Monte Carlo error


@pytest.mark.parametrize("argv,message", [
    (["train", "--data", "cifar"], "expected 'digits', 'mnist:PATH' or a FILE.npy"),
    (["train", "--data", "digits", "--hidden", "200,x"], "comma-separated layer widths"),
    (["train", "--data", "digits", "--epochs", "-1"], "integer >= 0"),
    (["train", "--data", "digits", "--lr", "0"], "positive number"),
    (["train", "--data", "mnist:/no/such/folder"], "no MNIST folder"),
    (["train", "--data", "missing.npy"], "no such file"),
    (["train"], "--data"),
    (["eval", "/no/such/model.npz", "--data", "digits"], "no checkpoint"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_give_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_eval_rejects_a_corrupt_checkpoint(tmp_path, capsys):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"garbage")
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(SystemExit):
        cli.main(["eval", str(p), "--data", str(tmp_path / "x.npy")])
    assert "not a valid vaekernels checkpoint" in capsys.readouterr().err


def test_bare_command_prints_usage_and_tour_runs_the_kernel_demo(monkeypatch, capsys):
    import vaekernels.cli.tour as tour
    calls = []
    monkeypatch.setattr(tour, "kernel_demo", lambda *a, **k: calls.append(1))
    assert cli.main([]) == 2                           # usage, like any command line without a command
    out = capsys.readouterr().out
    assert out.startswith("usage: vaekernels") and "tour" in out and not calls
    assert cli.main(["tour"]) == 0
    assert calls == [1]
    r = subprocess.run([sys.executable, "-m", "vaekernels"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout.startswith("usage: vaekernels") and "ms" not in r.stdout


def test_python_dash_m_help():
    r = subprocess.run([sys.executable, "-m", "vaekernels", "--help"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ))
    assert r.returncode == 0 and "demo" in r.stdout and "train" in r.stdout
