// mcmc_tile.hpp (CPU, internal): a tile of chains, the sampler's unit of work (its lane arrays, SIMD packs,
// aligned buffers and warm-up phases), for cpp/src/mcmc.cpp only (through mcmc_sampler.hpp). Included inside
// mcmc.cpp's per-instruction-set build: everything here has internal linkage, one copy per level (see Buffer).
//
// Chains run in tiles of kTile (16 with AVX-512). A tile's state is stored coordinate-major, (dim, kTile),
// so the per-chain random numbers, proposals and accept decisions (vaekernels/mcmc.hpp) run in lane loops
// the compiler vectorises, and the target densities of targets.hpp, instantiated on a native vector type
// (GCC/Clang vector extensions), evaluate the tile with plain SIMD arithmetic. Each lane does exactly the
// arithmetic of one chain in a fixed order, so a chain's draws depend only on (seed, chain id, step):
// not on the tile it lands in, the thread count, or the SIMD width.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "mcmc.hpp"
#include "vaekernels/mcmc.hpp"

VK_BEGIN_NAMESPACE
namespace {


using cpu::mcmc::Config;
using cpu::mcmc::Outputs;
using cpu::mcmc::Proposal;
using cpu::mcmc::kNumStats;

// A Pack is one native vector of doubles (a wider generic vector would be kept in memory by GCC between
// operations, and loop-carried sums would wait on store forwarding). A tile is two Packs of chains: the
// lane loops (Philox with 32-bit words, accept, adaptation) then fill whole vectors, and the target
// evaluates the two halves with independent accumulators.
#if defined(__AVX512F__)
constexpr int kPack = 8;
#elif defined(__AVX__)
constexpr int kPack = 4;
#else
constexpr int kPack = 2;
#endif
constexpr int kHalves = 2;
constexpr int kTile = kPack * kHalves;
// Draws are buffered per tile and written out up to kRecord at a time, so that each chain writes at least
// ~64 contiguous doubles at once instead of touching a different page (a TLB miss) per chain and step for
// a small dim. Large dims write directly (depth 1): their rows are long already, and a deep buffer would
// only add a pass through memory.
constexpr int kRecord = 32;
inline int record_depth(int64_t dim) { return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(kRecord, 64 / dim))); }
// may_alias: Packs are read from and written to plain double arrays.
typedef double Pack __attribute__((vector_size(kPack * sizeof(double)), __may_alias__));

// Aligned storage (128 bytes). Not std::vector: its out-of-line members are one shared (COMDAT) copy for
// all the instruction-set builds of this file, so the copy the linker keeps could be AVX-512 code (or
// assume another alignment) where another build calls it. This class has internal linkage: one per build.
template <class T>
class Buffer {
public:
    Buffer() = default;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    Buffer(Buffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
    ~Buffer() { release(); }
    void assign(int64_t n, T value) {
        release();
        n_ = n;
        p_ = n > 0 ? static_cast<T*>(::operator new(static_cast<size_t>(n) * sizeof(T), std::align_val_t(128))) : nullptr;
        for (int64_t i = 0; i < n; ++i) p_[i] = value;
    }
    void clear() { release(); }
    T* data() { return p_; }
    const T* data() const { return p_; }
    T& operator[](int64_t i) { return p_[i]; }
    const T& operator[](int64_t i) const { return p_[i]; }
    int64_t size() const { return n_; }

private:
    void release() {
        if (p_ != nullptr) ::operator delete(p_, std::align_val_t(128));
        p_ = nullptr;
        n_ = 0;
    }
    T* p_ = nullptr;
    int64_t n_ = 0;
};

// Warm-up schedule. Without covariance adaptation, one phase [0, n_warmup). With it, phase 0 is
// [0, n_warmup / 2) (isotropic proposal; draws in its second half feed the pooled covariance) and phase 1
// is [n_warmup / 2, n_warmup) with the covariance-shaped proposal and the step sizes adapted afresh. In each
// phase the step size follows Robbins-Monro and is frozen at the average of its log over the phase's second
// half (Polyak averaging: less noisy than the last iterate).
struct Phase {
    int64_t begin, end;
    int64_t average_from() const { return begin + (end - begin) / 2; }
};

struct Tile {
    int64_t row0 = 0;
    int n = 0;                                           // valid lanes (the last tile may be partial)
    alignas(64) uint32_t chain[kTile];
    // (rows, kTile) lane arrays: x, xp (dim); eps (normals of one step); independence proposal (dim)
    // each; warm-up covariance shift and sum (dim) and lower-triangular scatter (dim (dim + 1) / 2).
    // scratch: (dim) Packs for the Gaussian density.
    // MALA/HMC: g, gp the gradients at x, xp; mom the momentum (dim rows each); m the diagonal inverse metric
    // and m_isd = 1 / sqrt(m) (ones unless adapted: multiplying by 1.0 changes no bit); w_mean, w_m2 the
    // Welford sums of the metric's warm-up window.
    Buffer<double> x, xp, eps, scratch, q_mean, q_sd, q_inv_sd, cov_shift, cov_sum, cov_scatter, g, gp, mom;
    Buffer<double> m, m_isd, w_mean, w_m2;
    alignas(64) double lp[kTile], lpp[kTile], qx[kTile], qxp[kTile];
    alignas(64) double log_step[kTile], log_step_sum[kTile], step[kTile], u[kTile];
    alignas(64) double h[kTile], k0[kTile];   // MALA/HMC: this step's (jittered) step size, initial kinetic energy
    alignas(64) int64_t accepted[kTile], n_nan[kTile], n_div[kTile];
    // Recorded draws not yet written out: (kRecord, dim, kTile), (kRecord, kTile) and (kRecord, kNumStats,
    // kTile), draws rec_first ...
    Buffer<double> rec_x, rec_lp, rec_stats;
    int rec_n = 0;
    int64_t rec_first = 0;
};

// Views of lane arrays as Packs: half h of row j is pack j * kHalves + h.
inline const Pack* packs(const double* a) { return reinterpret_cast<const Pack*>(a); }
inline Pack* packs(double* a) { return reinterpret_cast<Pack*>(a); }

}  // namespace
VK_END_NAMESPACE
