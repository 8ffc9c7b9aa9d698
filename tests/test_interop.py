"""Arrays of other libraries in the NumPy-facing functions: CPU arrays with __dlpack__ (PyTorch, JAX) or the
buffer protocol are read without a copy when contiguous and give NumPy arrays back, bitwise as NumPy
inputs would; GPU arrays of any library are recognised by __cuda_array_interface__ or a CUDA DLPack device
(and go to the GPU path, never silently to the host)."""
import numpy as np
import pytest

from conftest import assert_bitwise, vk

from vaekernels.kernels import cuda, dispatch


def _inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 5)), rng.standard_normal((6, 5)) * 0.3


def test_torch_cpu_tensors_are_read_in_place():
    torch = pytest.importorskip("torch")
    mu, lv = _inputs()
    tm, tl = torch.from_numpy(mu.copy()), torch.from_numpy(lv.copy())
    view = dispatch.HOST.array("mu", tm)
    assert np.shares_memory(view, tm.numpy())                      # no copy
    got = vk.latent_forward(tm, tl, 3, 1)
    assert all(type(g) is np.ndarray for g in got)
    for g, w in zip(got, vk.latent_forward(mu, lv, 3, 1)):
        assert_bitwise(g, w, "torch CPU tensors")
    with pytest.raises(TypeError, match="vaekernels.torch"):
        vk.kl_standard_normal(tm.requires_grad_(), tl)


def test_jax_cpu_arrays_and_the_buffer_protocol():
    mu, lv = _inputs()
    assert_bitwise(vk.kl_standard_normal(memoryview(mu), memoryview(lv)), vk.kl_standard_normal(mu, lv), "memoryview")
    jax = pytest.importorskip("jax")
    jm, jl = jax.numpy.asarray(mu.astype(np.float32)), jax.numpy.asarray(lv.astype(np.float32))
    assert_bitwise(vk.kl_standard_normal(jm, jl), vk.kl_standard_normal(mu.astype(np.float32), lv.astype(np.float32)),
                   "JAX CPU arrays")


class _DLPackGPU:
    """Claims to be CUDA memory through DLPack only (as a JAX GPU array does)."""
    shape, dtype = (3, 4), np.dtype(np.float32)

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, stream=None):
        raise AssertionError("must not be read on the host")


def test_dlpack_gpu_arrays_take_the_gpu_path():
    assert cuda.is_device_array(_DLPackGPU())
    assert not cuda.is_device_array(np.zeros(3))
    if vk.cuda_available():
        pytest.skip("a device is usable: the no-device refusal cannot be observed")
    with pytest.raises(RuntimeError, match="CUDA"):
        vk.kl_standard_normal(_DLPackGPU(), _DLPackGPU())
    with pytest.raises(TypeError, match="GPU array"):
        vk.kl_standard_normal(_DLPackGPU(), np.zeros((3, 4), np.float32))
