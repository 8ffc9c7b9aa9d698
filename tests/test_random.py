"""Random streams: Philox4x32-10 known answers, the NumPy re-implementation, randn/rand statistics, the
normal transform against a higher-precision Box-Muller, and the (seed, offset) slicing contract of every
kernel that draws noise."""
import numpy as np
import pytest
from scipy import stats

from conftest import EXTENDED_LD, R, assert_bitwise, assert_close, ulp_error, vk

# -------------------------------------------------------------------------------------------------
# Philox4x32-10
# -------------------------------------------------------------------------------------------------
# Random123 1.14, its file kat_vectors, "philox4x32 10" lines: counter (4 words), key (2 words) -> output.
KAT = [
    ([0x00000000, 0x00000000, 0x00000000, 0x00000000], [0x00000000, 0x00000000],
     [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
    ([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff],
     [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]),
    ([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0],
     [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]),
]


@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_philox_known_answers(impl):
    ctr = np.array([c for c, _, _ in KAT], dtype=np.uint32)
    key = np.array([k for _, k, _ in KAT], dtype=np.uint32)
    expected = np.array([o for _, _, o in KAT], dtype=np.uint32)
    fn = vk.philox4x32_10 if impl == "kernel" else R.philox4x32_10
    assert_bitwise(fn(ctr, key), expected, f"philox4x32_10 ({impl})")


def test_philox_kernel_matches_numpy_reimplementation(rng):
    ctr = rng.integers(0, 2**32, size=(20000, 4), dtype=np.uint32)
    key = rng.integers(0, 2**32, size=(20000, 2), dtype=np.uint32)
    assert_bitwise(vk.philox4x32_10(ctr, key), R.philox4x32_10(ctr, key), "philox4x32_10")


def test_philox_views_and_empty(rng):
    ctr = rng.integers(0, 2**32, size=(64, 8), dtype=np.uint32)[:, ::2]      # non-contiguous
    key = rng.integers(0, 2**32, size=(64, 2), dtype=np.uint32)[::-1]        # negative stride
    assert_bitwise(vk.philox4x32_10(ctr, key), R.philox4x32_10(ctr, key), "philox4x32_10 views")
    assert vk.philox4x32_10(np.zeros((0, 4), np.uint32), np.zeros((0, 2), np.uint32)).shape == (0, 4)


# -------------------------------------------------------------------------------------------------
# Statistics of randn and rand on 1e6 draws
# -------------------------------------------------------------------------------------------------
N_STAT = 1_000_000
# Every check below is a z-test at 6 standard errors (two-sided false-alarm rate 2e-9 per check) or a
# KS test at p > 1e-6; with a fixed seed the suite is deterministic, and a wrong transform (a missing
# factor, a reused word, a biased angle) moves these statistics by hundreds of standard errors.
Z = 6.0


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["float32", "float64"])
def normals(request):
    return vk.randn(N_STAT, seed=0x5EED_1234_ABCD, offset=17, dtype=request.param).astype(np.float64)


def test_randn_mean(normals):
    # Sample mean of N(0, 1): standard error 1 / sqrt(n) = 1e-3.
    assert abs(normals.mean()) < Z / np.sqrt(N_STAT)


def test_randn_variance(normals):
    # Sample variance of N(0, 1): standard error sqrt(2 / n) = 1.41e-3.
    assert abs(normals.var() - 1.0) < Z * np.sqrt(2.0 / N_STAT)


def test_randn_kolmogorov_smirnov(normals):
    # The grids (2^-24 or 2^-52 in u and t) are far finer than the KS resolution 1/sqrt(n) = 1e-3.
    assert stats.kstest(normals, "norm").pvalue > 1e-6


def test_randn_lag1_correlation(normals):
    # Correlation of independent pairs: standard error 1 / sqrt(n). Adjacent numbers are the cos/sin
    # of one Box-Muller pair or straddle two pairs/blocks, so this sees both kinds of neighbours.
    r = np.corrcoef(normals[:-1], normals[1:])[0, 1]
    assert abs(r) < Z / np.sqrt(N_STAT)
    # cos and sin of one pair share the radius: z0, z1 are independent only if the transform is right.
    # Correlation of squares of independent N(0,1): also standard error 1 / sqrt(n) (per pair count).
    sq = normals[: N_STAT // 2 * 2].reshape(-1, 2) ** 2
    r2 = np.corrcoef(sq[:, 0], sq[:, 1])[0, 1]
    assert abs(r2) < Z / np.sqrt(sq.shape[0])


def test_randn_tails(normals):
    # P(|z| > 4) = 2 Phi(-4) = 6.334e-5: expected count 63.3, binomial sd sqrt(n p (1 - p)) = 7.96.
    p = 2 * stats.norm.sf(4.0)
    count = np.count_nonzero(np.abs(normals) > 4.0)
    assert abs(count - N_STAT * p) < Z * np.sqrt(N_STAT * p * (1 - p))
    # Both tails are present: each expected 31.7 with sd 5.6, so > 0 is a (very) safe floor.
    assert (normals > 4).any() and (normals < -4).any()


def test_randn_bounded_as_documented(dtype):
    # u >= 2^-24 (float32) or 2^-52 (float64) bounds |z| by sqrt(-2 log u): 5.77 and 8.49.
    z = vk.randn(200_000, 3, dtype=dtype)
    bound = np.sqrt(-2 * np.log(2.0 ** -(24 if dtype == np.float32 else 52)))
    assert np.isfinite(z).all() and np.abs(z).max() <= bound * (1 + 1e-6)


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["float32", "float64"])
def test_rand_uniform(dt):
    u = vk.rand(N_STAT, seed=99, offset=3, dtype=dt)
    # Open interval: never 0 or 1 (both would break log(u) downstream).
    assert u.min() > 0 and u.max() < 1
    assert stats.kstest(u.astype(np.float64), "uniform").pvalue > 1e-6
    # Mean of U(0,1): standard error sqrt(1/12 / n).
    assert abs(u.mean() - 0.5) < Z * np.sqrt(1 / 12 / N_STAT)
    # The documented grid: (2k+1) 2^-24 in float32, (2k+1) 2^-53 in float64 (odd multiples, exact).
    bits = 24 if dt == np.float32 else 53
    scaled = u.astype(np.float64) * 2.0**bits
    assert np.array_equal(scaled, np.round(scaled)) and (scaled % 2 == 1).all()


def test_rand_and_randn_match_reference_bitwise(dtype):
    # rand is pure integer arithmetic + one exact scaling: the reference reproduces every bit.
    # The last two cross the carry into the counter's high word (block 2^32: position 2^34 in float32
    # streams, 2^33 in float64) inside the vectorised eight-block batches.
    for seed, offset, n in [(0, 0, 1001), (2**64 - 1, 5, 999), (12345, 2**40 + 3, 4097),
                            (99, 2**34 - 101, 1000), (99, 2**33 - 51, 1000)]:
        assert_bitwise(vk.rand(n, seed, offset, dtype), R.rand(n, seed, offset, dtype), f"rand {seed} {offset}")


def test_streams_are_distinct(dtype):
    a = vk.randn(4096, 1, dtype=dtype)
    assert not np.array_equal(a, vk.randn(4096, 2, dtype=dtype))            # seed matters
    assert not np.array_equal(a, vk.randn(4096, 1 + 2**32, dtype=dtype))    # its high 32 bits too
    # randn and rand use different Philox tags: their words must not coincide.
    w_normal = R.philox_stream_words(1, 0, 8, tag=0)
    w_uniform = R.philox_stream_words(1, 0, 8, tag=1)
    assert not np.intersect1d(w_normal, w_uniform).size


# -------------------------------------------------------------------------------------------------
# randn against the higher-precision Box-Muller on the same Philox words
# -------------------------------------------------------------------------------------------------
# Budget: the kernel's log is <= 2 ulp (math.hpp), halved by the sqrt (+0.5 ulp rounding), the angle
# a = rem * (2 pi / 2^bits) is one rounded product (<= 1 ulp relative error in a, hence in sin a and
# ~ a^2 ulp in cos a), the sin/cos polynomials <= 1 ulp, the final product 0.5 ulp: about 4 ulp in the
# worst case. The reference is computed in float64 (float32 streams) or long double (float64 streams)
# with exact quarter-turn reduction, so its own error is negligible at the output precision.
RANDN_ULP = 4.0


def test_randn_matches_reference_transform_in_ulp(dtype):
    if dtype == np.float64 and not EXTENDED_LD:
        pytest.skip("long double is double here: no higher-precision reference for float64 normals")
    for seed, offset in [(0, 0), (7, 3), (2**64 - 1, 2**63 + 1)]:
        n = 1 << 18
        z = vk.randn(n, seed, offset, dtype)
        exact = R.randn_unrounded(n, seed, offset, dtype)
        err = ulp_error(z, exact, dtype)
        worst = int(np.argmax(err))
        assert err[worst] <= RANDN_ULP, (
            f"randn {dtype} seed {seed} offset {offset}: {float(err[worst]):.2f} ulp at position "
            f"{offset + worst}: kernel {z[worst]!r}, reference {float(exact[worst])!r}")
        # Rounded to the output precision the reference is one of the nearest few floats: the check
        # above is not vacuous. Most draws agree exactly.
        assert np.mean(z == exact.astype(dtype)) > 0.3


# -------------------------------------------------------------------------------------------------
# The (seed, offset) slicing contract
# -------------------------------------------------------------------------------------------------
# Offsets that start mid-block (odd, 1 or 3 mod 4), on a block boundary, around the 32-bit counter word
# carry (2^34 = 4 * 2^32 for float32 blocks), and near the end of the 64-bit stream.
OFFSETS = [0, 1, 2, 3, 5, 7, 8, 13, 1023, 1025, 4099, 2**32 - 3, 2**33 + 1, 2**34 - 5, 2**34 + 7, 2**63 + 11]
# Lengths below the kernel's vector batch, across its chunk size (1024) and the parallel threshold
# (32768 elements, so several threads split the range), with ragged tails.
LENGTHS = [1, 2, 3, 10, 1027, 40_001]


@pytest.mark.parametrize("fn", ["randn", "rand"])
def test_offset_slicing_contract(fn, dtype):
    f = getattr(vk, fn)
    for offset in OFFSETS:
        # One long draw from `base`; every shorter draw starting inside it must be a slice of it.
        base = 0 if offset < 5000 else offset - 3
        whole = f(offset - base + 3 + max(LENGTHS), 11, base, dtype)
        for n in LENGTHS:
            for start in (offset, offset + 1, offset + 3):
                assert_bitwise(f(n, 11, start, dtype), whole[start - base:start - base + n],
                               f"{fn}({n}, offset={start}) vs {fn}(.., offset={base})")


def test_randn_offset_example_from_docs(dtype):
    assert_bitwise(vk.randn(10, 42, offset=5, dtype=dtype), vk.randn(15, 42, dtype=dtype)[5:], "randn doc example")


def test_offset_at_end_of_stream(dtype):
    # Positions 2^64 - 10 .. 2^64 - 1: the counter's high word is all ones; the reference must agree.
    off = 2**64 - 10
    assert_bitwise(vk.rand(10, 5, off, dtype), R.rand(10, 5, off, dtype), "rand at stream end")
    z = vk.randn(10, 5, off, dtype)
    assert_close(z, R.randn(10, 5, off, dtype), atol=0, rtol=8 * np.finfo(dtype).eps, name="randn at stream end")
    assert_bitwise(vk.randn(4, 5, off + 6, dtype), z[6:], "randn at stream end, sliced")


def test_randn_shape_is_only_a_view_of_the_stream(dtype):
    flat = vk.randn(60, 9, 3, dtype)
    assert_bitwise(vk.randn((3, 4, 5), 9, 3, dtype), flat.reshape(3, 4, 5), "randn 3-D")
    assert vk.randn((), 9, 3, dtype).shape == () and vk.randn((), 9, 3, dtype) == flat[0]


def test_reparameterize_uses_randn_exactly(dtype, rng):
    mu = np.zeros((37, 29), dtype)
    # exp(0 / 2) = 1 exactly, so z = 0 + 1 * eps = eps: bit for bit the randn stream.
    for offset in (0, 1, 3, 4097, 2**34 - 1):
        assert_bitwise(vk.reparameterize(mu, mu, 21, offset), vk.randn(mu.shape, 21, offset, dtype),
                       f"reparameterize eps, offset {offset}")


def test_reparameterize_offset_contract(dtype, rng):
    mu = rng.normal(size=(13, 7)).astype(dtype)
    lv = rng.normal(size=(13, 7)).astype(dtype)
    n = mu.size
    for offset in (0, 1, 3, 6, 1021):
        k = 4
        many = vk.reparameterize(mu, lv, 8, offset, n_samples=k)
        assert many.shape == (k,) + mu.shape
        for s in range(k):
            assert_bitwise(many[s], vk.reparameterize(mu, lv, 8, offset + s * n), f"sample {s} offset {offset}")
        # Flat, the whole draw is a slice of one long draw: rows of a bigger batch of the same mu.
        tiled = vk.reparameterize(np.tile(mu, (k, 1)), np.tile(lv, (k, 1)), 8, offset)
        assert_bitwise(many.reshape(tiled.shape), tiled, "n_samples vs tiled batch")


def test_latent_offset_contract(dtype, rng):
    mu = rng.normal(size=(50, 33)).astype(dtype)
    lv = rng.normal(size=(50, 33)).astype(dtype)
    dz = rng.normal(size=(50, 33)).astype(dtype)
    for offset in (0, 1, 3, 5, 33, 2**34 - 2):
        z, kl = vk.latent_forward(mu, lv, 4, offset)
        # Rows r0.. of the batch at offset + r0 * L are the same draw as the rows inside the whole batch.
        for r0 in (1, 7, 31):
            z2, kl2 = vk.latent_forward(mu[r0:], lv[r0:], 4, offset + r0 * mu.shape[1])
            assert_bitwise(z2, z[r0:], f"latent_forward z rows {r0}: offset {offset}")
            assert_bitwise(kl2, kl[r0:], f"latent_forward kl rows {r0}")
            d = vk.latent_backward(dz, mu, lv, 4, offset)
            d2 = vk.latent_backward(dz[r0:], mu[r0:], lv[r0:], 4, offset + r0 * mu.shape[1])
            assert_bitwise(d2[0], d[0][r0:], "latent_backward dmu")
            assert_bitwise(d2[1], d[1][r0:], "latent_backward dlogvar")


def test_seed_is_a_64_bit_key(dtype):
    # Seeds that differ only in the high word, and the largest seed, match the reference stream.
    for seed in (2**32, 2**32 + 1, 2**63, 2**64 - 1):
        assert_bitwise(vk.rand(257, seed, 1, dtype), R.rand(257, seed, 1, dtype), f"rand seed {seed}")
        assert_close(vk.randn(257, seed, 1, dtype), R.randn(257, seed, 1, dtype), atol=0,
                     rtol=8 * np.finfo(dtype).eps, name=f"randn seed {seed}")


# -------------------------------------------------------------------------------------------------
# derive_seed: a frozen key derivation
# -------------------------------------------------------------------------------------------------
def _independent_derive_seed(seed, *path):
    """derive_seed written again with NumPy uint64 wrap-around arithmetic (not the package's code)."""
    u = np.uint64

    def mix(x):
        with np.errstate(over="ignore"):      # uint64 arithmetic wraps modulo 2**64, as intended
            z = u(x) + u(0x9E3779B97F4A7C15)
            z = (z ^ (z >> u(30))) * u(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> u(27))) * u(0x94D049BB133111EB)
        return int(z ^ (z >> u(31)))

    def fnv(data):
        h = u(0xCBF29CE484222325)
        with np.errstate(over="ignore"):
            for b in data:
                h = (h ^ u(b)) * u(0x100000001B3)
        return int(h)

    key = mix(seed)
    for part in path:
        word = mix(fnv(part.encode()) ^ 0x6E616D65) if isinstance(part, str) else mix(part ^ 0x696E7465)
        key = mix(key ^ word)
    return key


def test_derive_seed_building_blocks_match_published_vectors():
    from vaekernels.random import _fnv1a64, _splitmix64
    assert _splitmix64(0) == 0xE220A8397B1DCDAF          # SplitMix64 (Vigna's splitmix64.c), state 0: first output
    assert _fnv1a64(b"") == 0xCBF29CE484222325            # FNV-1a 64 test vectors (the FNV specification)
    assert _fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert _fnv1a64(b"foobar") == 0x85944171F73967E8


@pytest.mark.parametrize("args", [(0,), (0, "vae", "noise"), (2**64 - 1, "mcmc", 7), (42, "x", 0, "y"),
                                  (5, "é-unicode"), (1, 2**64 - 1)], ids=str)
def test_derive_seed_matches_an_independent_implementation(args):
    assert vk.random.derive_seed(*args) == _independent_derive_seed(*args)


def test_derive_seed_known_answers_are_frozen():
    # Part of the stream contract: streams keyed by derive_seed replay across versions. Changing any of
    # these values changes every user's derived streams (and VAE.fit's bits).
    assert vk.random.derive_seed(0) == 16294208416658607535
    assert vk.random.derive_seed(0, "vae", "noise") == 2628553162886546885
    assert vk.random.derive_seed(2**64 - 1, "mcmc", 7) == 16129608638410358140
    assert vk.random.derive_seed(42, "x", 0, "y") == 18362237299848643385


def test_derive_seed_separates_paths_and_validates():
    d = vk.random.derive_seed
    keys = {d(1), d(2), d(1, "a"), d(1, "b"), d(1, "a", "b"), d(1, "b", "a"), d(1, 1), d(1, "1"), d(1, 0),
            d(1, "")}
    assert len(keys) == 10                     # order matters; names never collide with integers
    assert all(0 <= k < 2**64 for k in keys)
    assert d(np.uint64(3), np.int64(4)) == d(3, 4)
    with pytest.raises(ValueError, match="seed"):
        d(-1)
    with pytest.raises(TypeError, match="str or int"):
        d(1, 2.5)
    with pytest.raises(TypeError, match="str or int"):
        d(1, True)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        d(1, 2**64)
    # derived keys give independent-looking streams: uncorrelated normals
    a, b = vk.randn(200_000, d(9, "a"), dtype=np.float64), vk.randn(200_000, d(9, "b"), dtype=np.float64)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(200_000)
