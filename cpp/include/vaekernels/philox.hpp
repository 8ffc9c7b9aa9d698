// philox.hpp: the Philox4x32-10 counter-based generator (Salmon et al., SC'11, "Random123").
//
// One block function maps a 128-bit counter and a 64-bit key to 128 random bits. vaekernels uses it
// statelessly: the key is the user's 64-bit seed, the counter says which block of which stream.
//
// Stream layout (the counter words c0..c3), fixed so results can be replayed on any device:
//   c0, c1  low and high 32 bits of the block index inside the stream
//   c2      the stream tag below (what the words are turned into)
//   c3      a sub-stream id (0 for randn/rand; the MCMC sampler puts the chain id here)
#pragma once

#include "config.hpp"

VK_BEGIN_NAMESPACE

enum StreamTag : uint32_t {
    kTagNormal = 0,     // randn, reparameterize, latent_*: Box-Muller normals
    kTagUniform = 1,    // rand: uniforms on (0, 1)
    kTagMcmc = 2,       // mcmc: proposals and acceptance uniforms (see cpp/src/mcmc*)
};

struct Philox4x32x10 {
    static constexpr uint32_t kMul0 = 0xD2511F53u;
    static constexpr uint32_t kMul1 = 0xCD9E8D57u;
    static constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
    static constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

    // Written with 64-bit products so that the CPU vectoriser and the GPU both see plain integer ops.
    VK_HD static void round(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0, uint32_t k1) {
        const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
        const uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
        const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
        const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }

    // In place: (c0..c3) <- Philox4x32-10(counter=(c0..c3), key=(k0, k1)).
    VK_HD static void block(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0, uint32_t k1) {
        round(c0, c1, c2, c3, k0, k1);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int r = 1; r < 10; ++r) {
            k0 += kWeyl0;
            k1 += kWeyl1;
            round(c0, c1, c2, c3, k0, k1);
        }
    }
};

// The four words of block `index` of stream (seed, tag, substream).
struct PhiloxWords { uint32_t w0, w1, w2, w3; };

VK_HD PhiloxWords philox_stream_block(uint64_t seed, uint64_t index, uint32_t tag, uint32_t substream) {
    uint32_t c0 = static_cast<uint32_t>(index), c1 = static_cast<uint32_t>(index >> 32), c2 = tag, c3 = substream;
    Philox4x32x10::block(c0, c1, c2, c3, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    return PhiloxWords{c0, c1, c2, c3};
}

VK_END_NAMESPACE
