// register_mcmc.cpp: the batched Metropolis-Hastings sampler (cpp/src/mcmc*). The Python layer
// (python/vaekernels/mcmc) validates arguments and allocates the outputs; these bindings check shapes
// once more, release the GIL and run the sampler. A Python target is called back once per step, with the
// GIL held only for that call.
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "../src/mcmc.hpp"
#include "common.hpp"

namespace vk::bind {

namespace {

namespace mc = vk::cpu::mcmc;

// Settings tuple from Python: (seed, chain_offset, n_warmup, n_draws, thin, proposal (mc::Proposal's value),
// adapt_step, adapt_covariance, target_accept, n_leapfrog, jitter, keep_warmup, adapt_metric).
using Settings = std::tuple<uint64_t, uint64_t, int64_t, int64_t, int64_t, int, bool, bool, double, int64_t, double, bool,
                            bool>;

// The run's output arrays from Python: (samples, log_prob, accept_rate, step_size, n_nan, proposal_chol,
// stats, n_divergent, inv_metric, warmup_samples, warmup_log_prob, warmup_stats); the warm-up ones None
// unless kept.
using OutArrays = std::tuple<Arr<double>, Arr<double>, Arr<double>, Arr<double>, Arr<int64_t>, Arr<double>,
                             Arr<double>, Arr<int64_t>, Arr<double>, py::object, py::object, py::object>;

// Between chunks of steps (cpu::mcmc::Poll): takes the GIL, lets Python run its signal handlers (Ctrl-C
// raises KeyboardInterrupt there, which stops the run) and calls the optional progress(done, total).
class PyProgress final : public mc::Progress {
public:
    explicit PyProgress(py::object callback) : callback_(std::move(callback)) {}
    void report(int64_t done, int64_t total) override {
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        if (!callback_.is_none()) callback_(done, total);
    }

private:
    py::object callback_;
};

struct Run {
    mc::Config cfg;
    mc::Outputs out;
    Arr<double> q_mean, q_logvar;   // keep converted proposal arrays alive while cfg points into them
    std::unique_ptr<PyProgress> progress;
};

Run prepare(const Arr<double>& x0, const Arr<double>& step0, const py::object& q_mean, const py::object& q_logvar,
            const Settings& s, OutArrays& o, const py::object& progress) {
    auto& [samples, log_prob, accept_rate, step_size, n_nan, proposal_chol, stats, n_divergent, inv_metric, w_samples,
           w_log_prob, w_stats] = o;
    Run r;
    r.progress = std::make_unique<PyProgress>(progress);
    r.cfg.progress = r.progress.get();
    const Rows xs = rows_of(x0, "x0");
    mc::Config& c = r.cfg;
    c.chains = xs.rows;
    c.dim = xs.cols;
    int proposal = 0;
    std::tie(c.seed, c.chain_offset, c.n_warmup, c.n_draws, c.thin, proposal, c.adapt_step, c.adapt_covariance,
             c.target_accept, c.n_leapfrog, c.jitter, c.keep_warmup, c.adapt_metric) = s;
    if (proposal < 0 || proposal > static_cast<int>(mc::Proposal::kHmc)) throw py::value_error("unknown proposal");
    c.proposal = static_cast<mc::Proposal>(proposal);
    if (c.n_leapfrog < 1) throw py::value_error("n_leapfrog must be >= 1");
    if (!(c.jitter >= 0.0 && c.jitter < 1.0)) throw py::value_error("jitter must be in [0, 1)");
    if (c.chains < 1 || c.dim < 1) throw py::value_error("x0 must have at least one chain and one coordinate");
    if (c.n_draws < 1 || c.n_warmup < 0 || c.thin < 1) throw py::value_error("need n_draws >= 1, n_warmup >= 0, thin >= 1");
    if (c.chain_offset + static_cast<uint64_t>(c.chains) > (uint64_t(1) << 32))
        throw py::value_error("chain_offset + chains must not exceed 2**32 (chain ids are 32-bit)");
    vector_of(step0, "step0", c.chains);
    c.x0 = x0.data();
    c.step0 = step0.data();
    if (c.proposal == mc::Proposal::kIndependent) {
        r.q_mean = py::cast<Arr<double>>(q_mean);
        r.q_logvar = py::cast<Arr<double>>(q_logvar);
        same_shape(x0, "x0", r.q_mean, "proposal_mean");
        same_shape(x0, "x0", r.q_logvar, "proposal_logvar");
        c.proposal_mean = r.q_mean.data();
        c.proposal_logvar = r.q_logvar.data();
    }
    const int64_t ch = c.chains, nd = c.n_draws, d = c.dim;
    auto check = [](const py::array& a, std::initializer_list<int64_t> shape, const char* name) {
        bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
        py::ssize_t i = 0;
        for (int64_t v : shape) ok = ok && a.shape(i++) == v;
        if (!ok) throw py::value_error(std::string(name) + " has the wrong shape " + shape_str(a));
    };
    check(samples, {ch, nd, d}, "samples");
    check(log_prob, {ch, nd}, "log_prob");
    check(accept_rate, {ch}, "accept_rate");
    check(step_size, {ch}, "step_size");
    check(n_nan, {ch}, "n_nan");
    check(proposal_chol, {d, d}, "proposal_chol");
    check(stats, {ch, nd, mc::kNumStats}, "stats");
    check(n_divergent, {ch}, "n_divergent");
    check(inv_metric, {ch, d}, "inv_metric");
    if (c.keep_warmup) {
        const int64_t nw = c.n_warmup;
        auto ws = py::cast<Arr<double>>(w_samples), wl = py::cast<Arr<double>>(w_log_prob), wt = py::cast<Arr<double>>(w_stats);
        if (ws.ptr() != w_samples.ptr() || wl.ptr() != w_log_prob.ptr() || wt.ptr() != w_stats.ptr())
            throw py::type_error("the warm-up outputs must be C-contiguous float64 arrays");
        check(ws, {ch, nw, d}, "warmup_samples");
        check(wl, {ch, nw}, "warmup_log_prob");
        check(wt, {ch, nw, mc::kNumStats}, "warmup_stats");
        r.out.warmup_samples = writable(ws, "warmup_samples");
        r.out.warmup_log_prob = writable(wl, "warmup_log_prob");
        r.out.warmup_stats = writable(wt, "warmup_stats");
    }
    r.out.samples = writable(samples, "samples");
    r.out.log_prob = writable(log_prob, "log_prob");
    r.out.accept_rate = writable(accept_rate, "accept_rate");
    r.out.step_size = writable(step_size, "step_size");
    r.out.n_nan = writable(n_nan, "n_nan");
    r.out.proposal_chol = writable(proposal_chol, "proposal_chol");
    r.out.stats = writable(stats, "stats");
    r.out.n_divergent = writable(n_divergent, "n_divergent");
    r.out.inv_metric = writable(inv_metric, "inv_metric");
    return r;
}

// A Python callable log_prob(Z) -> (chains,), or, for MALA/HMC, (log_prob (chains,), grad (chains, dim)).
// Z is a (chains, dim) float64 array the callable may keep: it is reused for the next call only when nothing
// else holds a reference to it (no allocation, no page faults per step), else a new one is made. The
// results are converted to float64 and must have those shapes.
class PyBatchTarget final : public mc::BatchTarget {
public:
    // Constructed with the GIL held; afterwards the GIL is taken once per step, in end_step, which also
    // prepares the next step's Z (so begin_step needs no GIL).
    PyBatchTarget(py::function fn, int64_t chains, int64_t dim)
        : fn_(std::move(fn)), chains_(chains), dim_(dim), z_({chains, dim}), z_data_(z_.mutable_data()) {}

    double* begin_step() override { return z_data_; }

    void end_step(double* log_prob, double* grad) override {
        py::gil_scoped_acquire gil;
        py::object res = fn_(z_);
        if (grad == nullptr) {
            copy_result(res, log_prob, false);
        } else {
            if (!py::isinstance<py::tuple>(res) || py::len(res) != 2)
                throw py::type_error("with proposal 'mala' or 'hmc' the target must return a tuple (log_prob (chains,), "
                                     "grad (chains, dim)), got " + std::string(py::str(py::type::of(res).attr("__name__"))));
            copy_result(res[py::int_(0)], log_prob, false);
            copy_result(res[py::int_(1)], grad, true);
        }
        if (z_.ref_count() > 1) {             // the callable kept Z: the next step gets a new array
            z_ = Arr<double>({chains_, dim_});
            z_data_ = z_.mutable_data();
        }
    }

private:
    void copy_result(const py::object& res, double* dst, bool is_grad) const {
        const char* what = is_grad ? "grad" : "log_prob";
        py::array arr = py::array::ensure(res);
        if (!arr) throw py::type_error(std::string("the target must return ") + what + " as an array of float64 values, got " +
                                       std::string(py::str(py::type::of(res).attr("__name__"))));
        const bool ok = is_grad ? (arr.ndim() == 2 && arr.shape(0) == chains_ && arr.shape(1) == dim_)
                                : (arr.ndim() == 1 && arr.shape(0) == chains_);
        if (!ok)
            throw py::value_error(std::string("the target's ") + what + " must have shape (" + std::to_string(chains_) +
                                  (is_grad ? ", " + std::to_string(dim_) + ")" : std::string(",)")) + " for Z of shape (" +
                                  std::to_string(chains_) + ", " + std::to_string(dim_) + "), got shape " + shape_str(arr));
        const char kind = arr.dtype().kind();
        if (kind != 'f' && kind != 'i' && kind != 'u')
            throw py::type_error(std::string("the target's ") + what + " must be real numbers, got dtype " +
                                 std::string(py::str(arr.dtype())));
        auto a = Arr<double>::ensure(arr);   // converts float32 / integers and other layouts; no copy for float64 C order
        std::memcpy(dst, a.data(), static_cast<size_t>(a.size()) * sizeof(double));
    }

    py::function fn_;
    int64_t chains_, dim_;
    Arr<double> z_;
    double* z_data_;
};

py::tuple factor_covariance(Arr<double> cov) {
    if (cov.ndim() != 2 || cov.shape(0) != cov.shape(1) || cov.shape(0) < 1)
        throw py::value_error("cov must be a square (dim, dim) matrix, got shape " + shape_str(cov));
    const int64_t d = cov.shape(0);
    Arr<double> chol({d, d}), inv({d, d});
    bool ok;
    {
        py::gil_scoped_release nogil;
        ok = mc::cholesky(cov.data(), d, chol.mutable_data());
        if (ok) mc::invert_lower(chol.data(), d, inv.mutable_data());
    }
    if (!ok) throw py::value_error("cov must be symmetric positive definite (its Cholesky factorisation failed)");
    return py::make_tuple(chol, inv);
}

// The built-in targets' constants from their Python arguments, checked against the points' dim.
GaussianParams gaussian_params(const Arr<double>& mean, const Arr<double>& inv_chol, double log_norm, int64_t dim) {
    vector_of(mean, "mean", dim);
    if (inv_chol.ndim() != 2 || inv_chol.shape(0) != dim || inv_chol.shape(1) != dim)
        throw py::value_error("inv_chol has the wrong shape " + shape_str(inv_chol));
    return GaussianParams{mean.data(), inv_chol.data(), log_norm, dim};
}
BananaParams banana_params(double b, double sigma1, int64_t dim) {
    if (dim < 2) throw py::value_error("Banana needs dim >= 2");
    return make_banana_params(b, sigma1, dim);
}
LogisticParams logistic_params(const Arr<double>& X, const Arr<double>& y, double prior_scale, int64_t dim) {
    const Rows xs = rows_of(X, "X");
    if (xs.cols != dim) throw py::value_error("X must have dim columns");
    vector_of(y, "y", xs.rows);
    return make_logistic_params(X.data(), y.data(), xs.rows, dim, prior_scale);
}

// (log p (chains,), grad (chains, dim) or None) at the points z (chains, dim).
template <class P>
py::tuple evaluate(void (*fn)(const P&, int64_t, const double*, double*, double*), const P& p, const Arr<double>& z,
                   bool want_grad) {
    const Rows zs = rows_of(z, "z");
    Arr<double> lp({zs.rows});
    py::object grad = py::none();
    double* g = nullptr;
    if (want_grad) {
        Arr<double> ga({zs.rows, zs.cols});
        g = ga.mutable_data();
        grad = ga;
    }
    {
        py::gil_scoped_release nogil;
        fn(p, zs.rows, z.data(), lp.mutable_data(), g);
    }
    return py::make_tuple(lp, grad);
}

}  // namespace

void register_mcmc(py::module_& m) {
    m.def("mcmc_factor_covariance", &factor_covariance, py::arg("cov").noconvert(),
          "(L, L^-1) for a symmetric positive definite matrix; ValueError otherwise.");

#define VK_MCMC_COMMON_ARGS                                                                                    \
    py::arg("x0").noconvert(), py::arg("step0").noconvert(), py::arg("proposal_mean"), py::arg("proposal_logvar"), \
        py::arg("settings"), py::arg("outputs").noconvert(), py::arg("progress")

    m.def("mcmc_run_gaussian",
          [](Arr<double> mean, Arr<double> inv_chol, double log_norm, Arr<double> x0, Arr<double> step0, py::object qm,
             py::object qlv, Settings s, OutArrays o, py::object progress) {
              Run r = prepare(x0, step0, qm, qlv, s, o, progress);
              const GaussianParams p = gaussian_params(mean, inv_chol, log_norm, r.cfg.dim);
              py::gil_scoped_release nogil;
              mc::table().run_gaussian(p, r.cfg, r.out);
          },
          py::arg("mean").noconvert(), py::arg("inv_chol").noconvert(), py::arg("log_norm"), VK_MCMC_COMMON_ARGS);

    m.def("mcmc_run_banana",
          [](double b, double sigma1, Arr<double> x0, Arr<double> step0, py::object qm, py::object qlv, Settings s,
             OutArrays o, py::object progress) {
              Run r = prepare(x0, step0, qm, qlv, s, o, progress);
              const BananaParams p = banana_params(b, sigma1, r.cfg.dim);
              py::gil_scoped_release nogil;
              mc::table().run_banana(p, r.cfg, r.out);
          },
          py::arg("b"), py::arg("sigma1"), VK_MCMC_COMMON_ARGS);

    m.def("mcmc_run_logistic",
          [](Arr<double> X, Arr<double> y, double prior_scale, Arr<double> x0, Arr<double> step0, py::object qm,
             py::object qlv, Settings s, OutArrays o, py::object progress) {
              Run r = prepare(x0, step0, qm, qlv, s, o, progress);
              const LogisticParams p = logistic_params(X, y, prior_scale, r.cfg.dim);
              py::gil_scoped_release nogil;
              mc::table().run_logistic(p, r.cfg, r.out);
          },
          py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("prior_scale"), VK_MCMC_COMMON_ARGS);

    m.def("mcmc_run_callable",
          [](py::function fn, Arr<double> x0, Arr<double> step0, py::object qm, py::object qlv, Settings s,
             OutArrays o, py::object progress) {
              Run r = prepare(x0, step0, qm, qlv, s, o, progress);
              PyBatchTarget target(std::move(fn), r.cfg.chains, r.cfg.dim);   // destroyed with the GIL held
              py::gil_scoped_release nogil;
              mc::table().run_batch(target, r.cfg, r.out);
          },
          py::arg("log_prob"), VK_MCMC_COMMON_ARGS);
#undef VK_MCMC_COMMON_ARGS

    m.def("mcmc_evaluate_gaussian",
          [](Arr<double> mean, Arr<double> inv_chol, double log_norm, Arr<double> z, bool grad) {
              return evaluate(mc::table().evaluate_gaussian, gaussian_params(mean, inv_chol, log_norm, rows_of(z, "z").cols), z, grad);
          },
          py::arg("mean").noconvert(), py::arg("inv_chol").noconvert(), py::arg("log_norm"), py::arg("z").noconvert(),
          py::arg("grad"));
    m.def("mcmc_evaluate_banana",
          [](double b, double sigma1, Arr<double> z, bool grad) {
              return evaluate(mc::table().evaluate_banana, banana_params(b, sigma1, rows_of(z, "z").cols), z, grad);
          },
          py::arg("b"), py::arg("sigma1"), py::arg("z").noconvert(), py::arg("grad"));
    m.def("mcmc_evaluate_logistic",
          [](Arr<double> X, Arr<double> y, double prior_scale, Arr<double> z, bool grad) {
              return evaluate(mc::table().evaluate_logistic, logistic_params(X, y, prior_scale, rows_of(z, "z").cols), z, grad);
          },
          py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("prior_scale"), py::arg("z").noconvert(),
          py::arg("grad"));
}

}  // namespace vk::bind
