// dense.hpp: multi-layer perceptrons on the thread team and a single-threaded BLAS (see dense.cpp).
//
// An MLP of n_layers affine layers, sizes[0] -> sizes[1] -> ... -> sizes[n_layers], with `activation`
// (activations.hpp) after every layer but the last. All arrays C-contiguous, row-major, `rows` rows:
// x (rows, sizes[0]); W[i] (sizes[i], sizes[i+1]); b[i] (sizes[i+1]); out[i] / h[i] (rows, sizes[i+1]).
#pragma once

#include <cstdint>

namespace vk::cpu {

template <class T>
struct MlpForward {
    int64_t rows;
    int n_layers;
    const int64_t* sizes;   // n_layers + 1
    int activation;
    const T* x;
    const T* const* W;
    const T* const* b;
    T* const* out;          // out[i] = layer i's output (after its activation); out[n_layers - 1] is the result
};

// Given dout = d loss / d output (overwritten), the gradients: dW[i], db[i] (unless dW is null), and
// d loss / d x into dx (unless null). h = the forward pass's outputs; dh[i] (rows, sizes[i+1]) are work
// buffers (d loss / d h[i], then d loss / d pre-activation). The loss gradient is scaled by `scale` once.
template <class T>
struct MlpBackward {
    int64_t rows;
    int n_layers;
    const int64_t* sizes;
    int activation;
    const T* x;
    const T* const* W;
    const T* const* h;      // n_layers - 1 hidden outputs
    T* dout;
    T* const* dh;           // n_layers - 1
    T* const* dW;           // null: no parameter gradients
    T* const* db;
    T* dx;                  // null: no input gradient
    T scale;
};

template <class T> void mlp_forward(const MlpForward<T>& a);
// Returns whether every parameter gradient (dW, db) is finite (true without them).
template <class T> bool mlp_backward(const MlpBackward<T>& a);

// The epilogues alone, on a whole (rows, cols) array (vaekernels.nn's activations): y = activation(y + b)
// (b may be null: no bias); d = (d scale) activation'(y) with db = its column sums (db may be null).
template <class T> void bias_activation(int64_t rows, int64_t cols, T* y, const T* b, int act);
template <class T> void activation_grad(int64_t rows, int64_t cols, T* d, const T* y, T* db, int act, T scale);

// The GEMMs to call: cblas_sgemm / cblas_dgemm-compatible entry points (ilp64: 64-bit integer arguments),
// or null for the built-in GEMM. Process-wide; safe to call while other threads run MLPs.
void set_blas(void* sgemm, void* dgemm, bool ilp64);
bool have_blas();

}  // namespace vk::cpu
