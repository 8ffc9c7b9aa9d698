"""Ctrl-C, fork and progress. Each case runs in a fresh interpreter that sends itself a real SIGINT from a
timer thread and measures, inside that process, the time from the signal to the KeyboardInterrupt; after
it, the process must be idle (no worker thread still computing: CPU time over the next 0.3 s of sleep)
and the object consistent. The runs are sized to take minutes, so an interrupt that is not honoured shows
as a timeout, not as a pass.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO, vk

PRELUDE = """
import hashlib, json, os, signal, threading, time
import numpy as np
import vaekernels as vk
from vaekernels import mcmc

# A process started in the background by a non-interactive shell (nohup, `cmd &` in a script, some CI
# runners) inherits SIGINT ignored, and Python then keeps ignoring it: restore Ctrl-C's usual meaning.
signal.signal(signal.SIGINT, signal.default_int_handler)

sent = {}
def fire():
    sent["t"] = time.perf_counter()
    os.kill(os.getpid(), signal.SIGINT)

def interrupted(run, delay=1.0):
    threading.Timer(delay, fire).start()
    try:
        run()
    except KeyboardInterrupt:
        latency = time.perf_counter() - sent["t"]
        c0 = time.process_time()
        time.sleep(0.3)
        return {"latency": latency, "busy_cpu": time.process_time() - c0}
    return {"latency": None}
"""

MAX_LATENCY = 0.5          # the guarantee (README: Reliability)
MAX_IDLE_CPU = 0.1         # CPU seconds used while the child sleeps 0.3 s after the interrupt


def _child(body, timeout=240):
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(body)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _check(res):
    assert res["latency"] is not None, "the run finished before the interrupt: make it longer"
    assert res["latency"] < MAX_LATENCY, res
    assert res["busy_cpu"] < MAX_IDLE_CPU, res


@pytest.mark.parametrize("target", ["banana", "callable"])
def test_ctrl_c_stops_mcmc_sample(target):
    res = _child(f"""
        t = mcmc.Banana() if "{target}" == "banana" else mcmc.Gaussian(np.zeros(3), np.eye(3)).log_prob
        x0 = np.zeros((4096 if "{target}" == "banana" else 256, 2 if "{target}" == "banana" else 3))
        res = interrupted(lambda: mcmc.sample(t, x0, n_draws=10, thin=10**7, n_warmup=0, step_size=1.0, seed=0,
                                              progress=False))
        print(json.dumps(res))
    """)
    _check(res)


def test_ctrl_c_stops_fit_between_consistent_steps():
    """After the interrupt, parameters, Adam state and step counter are those of a run that stopped after
    exactly that many steps (one batch per epoch here, so a reference run of that many epochs), and fit
    runs again."""
    res = _child("""
        X = (np.random.default_rng(0).random((64, 16)) < 0.5).astype(np.float32)
        m = vk.VAE(16, 3, hidden=(8,), seed=1)
        res = interrupted(lambda: m.fit(X, epochs=10**7, batch_size=64, progress=False), delay=1.5)
        ref = vk.VAE(16, 3, hidden=(8,), seed=1)
        ref.fit(X, epochs=m.step, batch_size=64, progress=False)
        digest = lambda a: hashlib.sha256(a.tobytes()).hexdigest()
        res.update(step=m.step, epoch=m.epoch, history=len(m.history["epoch"]),
                   same=[digest(getattr(m, k) if k != "p" else m._params.flat) ==
                         digest(getattr(ref, k) if k != "p" else ref._params.flat) for k in ("p", "_adam_m", "_adam_v")])
        m.fit(X, epochs=2, batch_size=64, progress=False)
        res["after"] = m.step
        print(json.dumps(res))
    """)
    _check(res)
    assert res["step"] > 10 and res["same"] == [True, True, True], res
    assert res["epoch"] == res["history"] and res["epoch"] in (res["step"], res["step"] - 1), res
    assert res["after"] == res["step"] + 2


def test_ctrl_c_stops_iwae():
    res = _child("""
        m = vk.VAE(784, 50, hidden=(200, 200), seed=0)
        X = (np.random.default_rng(0).random((20, 784)) < 0.3).astype(np.float32)
        print(json.dumps(interrupted(lambda: m.iwae(X, k=10**8, seed=0))))
    """)
    _check(res)


@pytest.mark.parametrize("call", ["ais", "bdmc", "hmc"])
def test_ctrl_c_stops_ais_bdmc_and_hmc(call):
    """AIS and BDMC on an MNIST-sized decoder (their loop is Python: a leapfrog step is the longest stretch),
    and HMC through a Python gradient target."""
    res = _child(f"""
        m = vk.VAE(784, 50, hidden=(200, 200), seed=0)
        X = (np.random.default_rng(0).random((32, 784)) < 0.3).astype(np.float32)
        if "{call}" == "ais":
            run = lambda: mcmc.ais(m, X, n_steps=10**6, chains=16, seed=0, progress=False)
        elif "{call}" == "bdmc":
            run = lambda: mcmc.bdmc(m, n_simulated=32, n_steps=10**6, chains=16, seed=0, progress=False)
        else:
            post = mcmc.vae_posterior(m, X, chains_per_x=16)
            run = lambda: mcmc.sample(post, post.initial_points(1), n_draws=10, thin=10**6, seed=0, proposal="hmc",
                                      progress=False)
        print(json.dumps(interrupted(run)))
    """)
    _check(res)


def test_forked_child_can_use_the_kernels():
    """A thread pool does not survive fork: after the parent has run parallel kernels, a child made by fork
    builds its own thread team (same bits) instead of waiting forever for the parent's."""
    res = _child("""
        big = vk.randn(1 << 22, 1)                      # parallel: the parent's thread team is running
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            out = vk.randn(1 << 22, 1)
            s = mcmc.sample(mcmc.Banana(), np.zeros((512, 2)), n_draws=20, n_warmup=20, seed=3, progress=False)
            os.write(w, json.dumps({"same": bool(np.array_equal(out, big)),
                                    "mcmc": float(s.samples.sum())}).encode())
            os._exit(0)
        deadline = time.time() + 60
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            print(json.dumps({"hung": True}))
            raise SystemExit
        child = json.loads(os.read(r, 1 << 16))
        ref = mcmc.sample(mcmc.Banana(), np.zeros((512, 2)), n_draws=20, n_warmup=20, seed=3, progress=False)
        child["mcmc_same"] = child["mcmc"] == float(ref.samples.sum())
        print(json.dumps(child))
    """, timeout=120)
    assert not res.get("hung"), "the forked child hung in the kernels"
    assert res["same"] and res["mcmc_same"], res


def test_sample_progress_callback_reports_and_can_stop_the_run():
    calls = []
    res = vk.mcmc.sample(vk.mcmc.Banana(), np.zeros((256, 2)), n_draws=200, n_warmup=100, seed=1,
                         progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (300, 300) and all(t == 300 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    quiet = vk.mcmc.sample(vk.mcmc.Banana(), np.zeros((256, 2)), n_draws=200, n_warmup=100, seed=1, progress=False)
    np.testing.assert_array_equal(res.samples, quiet.samples)      # reporting changes no draw

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    with pytest.raises(Stop):
        vk.mcmc.sample(vk.mcmc.Banana(), np.zeros((64, 2)), n_draws=10, thin=10**8, n_warmup=0, seed=1,
                       step_size=1.0, progress=stop)
    with pytest.raises(Stop):
        vk.mcmc.sample(lambda z: -0.5 * (z ** 2).sum(1), np.zeros((64, 2)), n_draws=10, thin=10**8, n_warmup=0,
                       seed=1, step_size=1.0, progress=stop)
