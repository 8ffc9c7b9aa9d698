// mcmc_setup.cpp: host-only parts of the sampler, compiled once: the choice of the per-ISA sampler
// (the level cpu::kernels() runs at), Cholesky factors, and the pooled warm-up covariance.
#include <chrono>
#include <cmath>
#include <cstring>

#include "kernels.hpp"
#include "mcmc.hpp"

namespace vk::cpu::mcmc {

const Table& mcmc_table_isa_scalar();
const Table& mcmc_table_isa_baseline();
#if defined(VK_HAVE_AVX2)
const Table& mcmc_table_isa_avx2();
#endif
#if defined(VK_HAVE_AVX512)
const Table& mcmc_table_isa_avx512();
#endif

const Table& table() {
    static const Table& t = [&]() -> const Table& {
        const char* level = kernels().name;
#if defined(VK_HAVE_AVX512)
        if (std::strcmp(level, "avx512") == 0) return mcmc_table_isa_avx512();
#endif
#if defined(VK_HAVE_AVX2)
        if (std::strcmp(level, "avx2") == 0) return mcmc_table_isa_avx2();
#endif
        if (std::strcmp(level, "baseline") == 0) return mcmc_table_isa_baseline();
        return mcmc_table_isa_scalar();
    }();
    return t;
}

namespace {
double seconds_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Poll::Poll(Progress* progress, int64_t total) : progress_(progress), total_(total) {
    last_report_ = chunk_start_ = seconds_now();
}

int64_t Poll::chunk() const { return progress_ == nullptr ? total_ : chunk_; }

void Poll::after(int64_t steps, int64_t done) {
    if (progress_ == nullptr) return;
    const double now = seconds_now();
    const double took = now - chunk_start_;
    if (steps >= chunk_) {   // a whole chunk ran: aim the next one at about kSeconds / 2
        if (took < kSeconds / 4 && chunk_ < (int64_t(1) << 40)) chunk_ *= 2;
        else if (took > kSeconds && chunk_ > 1) chunk_ /= 2;
    }
    if (now - last_report_ >= kSeconds || done >= total_) {
        last_report_ = now;
        progress_->report(done, total_);
    }
    chunk_start_ = seconds_now();
}

// Cholesky-Banachiewicz, row by row, in double.
bool cholesky(const double* a, int64_t n, double* l) {
    for (int64_t i = 0; i < n * n; ++i) l[i] = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j <= i; ++j) {
            double s = a[i * n + j];
            for (int64_t k = 0; k < j; ++k) s -= l[i * n + k] * l[j * n + k];
            if (i == j) {
                if (!(s > 0.0) || !std::isfinite(s)) return false;   // also catches NaN
                l[i * n + i] = std::sqrt(s);
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    return true;
}

void invert_lower(const double* l, int64_t n, double* inv) {
    for (int64_t i = 0; i < n * n; ++i) inv[i] = 0.0;
    // Column j of L^-1 solves L v = e_j (forward substitution); v_i = 0 for i < j.
    for (int64_t j = 0; j < n; ++j) {
        inv[j * n + j] = 1.0 / l[j * n + j];
        for (int64_t i = j + 1; i < n; ++i) {
            double s = 0.0;
            for (int64_t k = j; k < i; ++k) s -= l[i * n + k] * inv[k * n + j];
            inv[i * n + j] = s / l[i * n + i];
        }
    }
}

void CovarianceAccumulator::reset(int64_t chains, int64_t d) {
    dim = d;
    count = 0;
    shift.assign(static_cast<size_t>(chains * d), 0.0);
    sum.assign(static_cast<size_t>(chains * d), 0.0);
    scatter.assign(static_cast<size_t>(chains * d * d), 0.0);
}

// Total covariance of all chains' draws: sum over chains of the within-chain scatter about the chain mean
// plus count (m_c - m)(m_c - m)^T, over (chains count - 1). Chain c's mean is shift_c + sum_c / count.
std::vector<double> CovarianceAccumulator::pooled_cholesky(int64_t chains) const {
    const int64_t d = dim;
    const double n = static_cast<double>(count);
    std::vector<double> mean(static_cast<size_t>(d), 0.0), cm(static_cast<size_t>(chains * d));
    for (int64_t c = 0; c < chains; ++c)
        for (int64_t j = 0; j < d; ++j) {
            cm[c * d + j] = shift[c * d + j] + sum[c * d + j] / n;
            mean[j] += cm[c * d + j];
        }
    for (int64_t j = 0; j < d; ++j) mean[j] /= static_cast<double>(chains);
    std::vector<double> cov(static_cast<size_t>(d * d), 0.0);
    for (int64_t c = 0; c < chains; ++c)
        for (int64_t i = 0; i < d; ++i)
            for (int64_t j = 0; j <= i; ++j) {
                const double si = sum[c * d + i], sj = sum[c * d + j];
                const double within = scatter[(c * d + i) * d + j] - si * sj / n;
                const double di = cm[c * d + i] - mean[i], dj = cm[c * d + j] - mean[j];
                cov[i * d + j] += within + n * di * dj;
            }
    const double denom = n * static_cast<double>(chains) - 1.0;
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j <= i; ++j) {
            cov[i * d + j] /= denom;
            cov[j * d + i] = cov[i * d + j];
        }
    std::vector<double> l(static_cast<size_t>(d * d));
    if (cholesky(cov.data(), d, l.data())) return l;
    // Singular estimate (e.g. a coordinate that never moved): keep only the variances, floored.
    for (int64_t i = 0; i < d * d; ++i) l[i] = 0.0;
    for (int64_t i = 0; i < d; ++i) {
        const double v = cov[i * d + i];
        l[i * d + i] = (v > 0.0 && std::isfinite(v)) ? std::sqrt(v) : 1.0;
    }
    return l;
}

}  // namespace vk::cpu::mcmc
