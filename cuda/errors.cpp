// errors.cpp: CUDA runtime errors as exceptions with messages a user can act on.
#include <cuda_runtime_api.h>

#include <string>

#include "kernels.hpp"

namespace vk::gpu {

bool is_no_device_error(cudaError_t e) {
    switch (e) {
        case cudaErrorNoDevice:
        case cudaErrorInsufficientDriver:
        case cudaErrorInitializationError:
        case cudaErrorStubLibrary:
        case cudaErrorDevicesUnavailable:
        case cudaErrorSystemDriverMismatch:
        case cudaErrorCompatNotSupportedOnDevice:
        case cudaErrorNoKernelImageForDevice:
            return true;
        default:
            return false;
    }
}

std::string error_message(cudaError_t e, const char* what) {
    const std::string detail = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    if (e == cudaErrorNoKernelImageForDevice)
        return std::string("no CUDA device is usable with this build (") + detail +
               "); rebuild with CMAKE_CUDA_ARCHITECTURES including this GPU's compute capability";
    if (is_no_device_error(e)) return "no CUDA device is usable (" + detail + ")";
    return std::string(what) + ": " + detail;
}

void check_launch(const char* kernel_name) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw CudaError(error_message(e, kernel_name));
}

}  // namespace vk::gpu
