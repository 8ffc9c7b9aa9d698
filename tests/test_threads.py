"""Many threads at once: every kernel and mcmc.sample from 8 Python threads give the bits of serial calls;
one VAE evaluated from many threads gives the serial results; a second concurrent fit (or loss_and_grad)
on one model is refused; the process-wide BLAS pin is counted across threads; models pickle."""
import copy
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import assert_bitwise, vk

from vaekernels import _blas, mcmc
from vaekernels.kernels import KERNELS
from vaekernels.kernels.spec import BATCH, Array

THREADS = 8


def _kernel_args(k, seed, shape=(37, 53)):
    """Inputs of kernel k (its parameters in order; arrays of the kernel's shape or batch shape)."""
    rng = np.random.default_rng(seed)
    args = []
    for p in k.params:
        if isinstance(p, Array):
            s = shape[:-1] if p.role == BATCH else shape
            if k.dtypes == ("uint32",):
                args.append(rng.integers(0, 2**32, (shape[0], 4 if p.name == "counters" else 2), dtype=np.uint32))
            else:
                args.append(rng.uniform(0.05, 0.95, s))
        else:
            args.append({"seed": seed, "offset": 3 * seed, "n_samples": 2, "real": 0.25, "step": 1 + seed % 5,
                         "shape": shape, "dtype": np.float64}[p.kind])
    return args


def _run(k, args, use_out):
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]   # adam_step updates in place
    fn = getattr(vk, k.name)
    if use_out and k.outputs:
        first = fn(*args)
        first = first if isinstance(first, tuple) else (first,)
        outs = tuple(np.full_like(o, np.nan if o.dtype.kind == "f" else 0xDEADBEEF) for o in first)
        res = fn(*args, out=outs[0] if len(outs) == 1 else outs)
        return res if isinstance(res, tuple) else (res,)
    res = fn(*args)
    if k.returns != "outputs":
        return tuple(a for a, p in zip(args, k.params) if isinstance(p, Array) and p.io == "inout")
    return res if isinstance(res, tuple) else (res,)


@pytest.mark.parametrize("use_out", [False, True], ids=["allocating", "out="])
def test_every_kernel_from_8_threads_equals_serial(use_out):
    jobs = [(k, s) for k in KERNELS for s in range(6)]
    serial = {(k.name, s): _run(k, _kernel_args(k, s), use_out) for k, s in jobs}

    def worker(t):
        results = []
        for rep in range(4):                                       # many calls per thread, in varied orders
            order = jobs[t::THREADS] + jobs[(t + rep) % THREADS::THREADS]
            for k, s in order:
                results.append(((k.name, s), _run(k, _kernel_args(k, s), use_out)))
        return results

    with ThreadPoolExecutor(THREADS) as ex:
        for results in ex.map(worker, range(THREADS)):
            for key, got in results:
                for g, w in zip(got, serial[key]):
                    assert_bitwise(g, w, f"{key} from 8 threads")


def test_mcmc_sample_from_8_threads_equals_serial():
    banana = mcmc.Banana()
    gauss = mcmc.Gaussian(np.zeros(3), np.eye(3) + 0.3)

    def run(i):
        target = (banana, gauss, gauss.log_prob)[i % 3]             # C++ targets and a Python callable
        x0 = np.random.default_rng(i).standard_normal((16, target.dim if hasattr(target, "dim") else 3))
        return mcmc.sample(target, x0, n_draws=60, n_warmup=40, seed=i).samples

    serial = [run(i) for i in range(2 * THREADS)]
    with ThreadPoolExecutor(THREADS) as ex:
        for i, got in enumerate(ex.map(run, range(2 * THREADS))):
            assert_bitwise(got, serial[i], f"mcmc.sample call {i} from 8 threads")


# -------------------------------------------------------------------------------------------------
# one VAE, many threads
# -------------------------------------------------------------------------------------------------
def _model():
    m = vk.VAE(24, 4, hidden=(32,), seed=3)
    X = (np.random.default_rng(0).random((300, 24)) < 0.4).astype(np.float32)
    m.fit(X, epochs=2, batch_size=50, progress=False)
    return m, X


def test_vae_evaluation_from_many_threads_equals_serial():
    m, X = _model()
    Z = np.random.default_rng(1).standard_normal((40, 3, 4)).astype(np.float32)
    post = mcmc.vae_posterior(m, X[:5], chains_per_x=8)
    Zp = np.random.default_rng(2).standard_normal((40, 4))
    calls = {
        "elbo": lambda: m.elbo(X, seed=1, batch_size=64),
        "iwae": lambda: m.iwae(X[:60], k=50, seed=2, batch_size=500),
        "encode": lambda: m.encode(X, batch_size=70)[0],
        "decode": lambda: m.decode(Z[:, 0], batch_size=30),
        "decoder_ll": lambda: m.decoder_log_likelihood(X[:40], Z, grad=True, batch_size=17)[1],
        "posterior": lambda: post.log_prob(Zp),
    }
    serial = {name: fn() for name, fn in calls.items()}
    names = list(calls) * 6

    def run(name):
        return name, calls[name]()

    with ThreadPoolExecutor(THREADS) as ex:
        for name, got in ex.map(run, names):
            assert_bitwise(got, serial[name], f"{name} from many threads")


def test_second_concurrent_fit_is_refused_and_the_first_completes():
    m, X = _model()
    reference = copy.deepcopy(m)
    reference.fit(X, epochs=3, batch_size=50, progress=False)
    started, release = threading.Event(), threading.Event()

    def slow_callback(model, record):
        started.set()
        release.wait(30)

    errors = []
    t = threading.Thread(target=lambda: m.fit(X, epochs=3, batch_size=50, progress=False, callback=slow_callback))
    t.start()
    assert started.wait(30)
    for call in (lambda: m.fit(X, epochs=1, progress=False), lambda: m.loss_and_grad(X[:10], seed=0)):
        try:
            call()
        except RuntimeError as e:
            errors.append(str(e))
    release.set()
    t.join(60)
    assert len(errors) == 2 and all("already training" in e for e in errors), errors
    for k, v in reference.get_params().items():                 # the first fit was not disturbed
        np.testing.assert_array_equal(m.get_params()[k], v)
    m.fit(X, epochs=1, batch_size=50, progress=False)           # and the model trains again afterwards


def test_blas_pin_is_counted_across_threads():
    if not _blas.pinned_blas_threads():
        pytest.skip("no way to pin this BLAS here (no OpenBLAS found, no threadpoolctl)")
    handles = _blas._openblas_handles()
    if not handles:
        pytest.skip("the check reads OpenBLAS's own thread count")
    get = handles[0][1]
    setter = handles[0][0]
    original = get()
    setter(3)
    try:
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        seen = {}

        def a():
            with _blas.blas_threads(1):
                a_in.set()
                b_in.wait(10)
            a_out.set()

        def b():
            a_in.wait(10)
            with _blas.blas_threads(1):
                b_in.set()
                a_out.wait(10)
                seen["after A left"] = get()              # A finished first: B must still be pinned
            seen["after B left"] = get()

        ta, tb = threading.Thread(target=a), threading.Thread(target=b)
        ta.start(), tb.start()
        ta.join(20), tb.join(20)
        assert seen == {"after A left": 1, "after B left": 3}
        with _blas.blas_threads(2):
            with _blas.blas_threads(1):
                assert get() == 1
            assert get() == 2
        assert get() == 3
    finally:
        setter(original)


def test_vae_pickles_and_deep_copies_with_its_training_state():
    m, X = _model()
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert clone.config() == m.config() and (clone.step, clone.epoch) == (m.step, m.epoch)
        assert clone.history == m.history
        clone.fit(X, epochs=1, batch_size=50, progress=False)
        twin = copy.deepcopy(m)
        twin.fit(X, epochs=1, batch_size=50, progress=False)
        for k, v in twin.get_params().items():                   # training continues identically
            np.testing.assert_array_equal(clone.get_params()[k], v)
