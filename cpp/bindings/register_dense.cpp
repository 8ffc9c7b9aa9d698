// register_dense.cpp: the MLP forward/backward of cpp/src/dense.hpp and the BLAS hand-over, for
// vaekernels.nn. Checks every array completely (dtype, layout, shapes, writability, overlaps) so a direct call
// can never read or write out of bounds; the Python layer builds the lists once per model and buffer set.
#include <string>
#include <vector>

#include "common.hpp"
#include "../src/dense.hpp"

namespace vk::bind {

namespace {

template <class T>
class MlpArgs {
public:
    explicit MlpArgs(const char* fn) : fn_(fn) {}

    // An array of shape (r, c), or (r,) when c < 0, of dtype T; recorded for the overlap check. The argument's
    // name is `base`, or `base[index]` for index >= 0; messages are built only when a check fails.
    T* take(const py::handle& h, const char* base, int index, int64_t r, int64_t c, bool write) {
        const auto full = [&] { return std::string(fn_) + " argument " + arg_name(base, index); };
        if (!py::isinstance<py::array>(h)) throw py::type_error(full() + " must be a NumPy array");
        auto arr = py::reinterpret_borrow<py::array>(h);
        if (!py::isinstance<py::array_t<T>>(arr))
            throw py::type_error(full() + " must have dtype " + (sizeof(T) == 4 ? "float32" : "float64") + ", got " +
                                 std::string(py::str(arr.dtype())));
        if (!(arr.flags() & py::array::c_style)) throw py::value_error(full() + " must be C-contiguous");
        if (!(arr.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
            throw py::value_error(full() + " must be aligned to its element size");
        const bool ok = c < 0 ? (arr.ndim() == 1 && arr.shape(0) == r)
                              : (arr.ndim() == 2 && arr.shape(0) == r && arr.shape(1) == c);
        if (!ok)
            throw py::value_error(full() + " must have shape " +
                                  (c < 0 ? "(" + std::to_string(r) + ",)"
                                         : "(" + std::to_string(r) + ", " + std::to_string(c) + ")") +
                                  ", got " + shape_str(arr));
        if (write && !arr.writeable()) throw py::value_error(full() + " is read-only");
        const auto b = reinterpret_cast<uintptr_t>(arr.data());
        taken_.push_back(Taken{b, b + static_cast<uintptr_t>(arr.size()) * sizeof(T), base, index, write});
        return static_cast<T*>(const_cast<void*>(arr.data()));
    }

    // Every written array overlaps no other array (the C++ loops promise __restrict).
    void check_overlaps() const {
        for (const Taken& w : taken_) {
            if (!w.written || w.begin == w.end) continue;
            for (const Taken& o : taken_)
                if (&o != &w && o.begin != o.end && w.begin < o.end && o.begin < w.end)
                    throw py::value_error(std::string(fn_) + ": " + arg_name(w.base, w.index) + " overlaps " +
                                          arg_name(o.base, o.index) +
                                          " in memory (outputs must not share memory with any other argument)");
        }
    }

private:
    struct Taken {
        uintptr_t begin, end;
        const char* base;
        int index;
        bool written;
    };
    static std::string arg_name(const char* base, int index) {
        return index < 0 ? std::string(base) : std::string(base) + "[" + std::to_string(index) + "]";
    }

    const char* fn_;
    std::vector<Taken> taken_;   // the arrays (the caller's lists keep them alive for the call)
};

py::list as_list(const py::object& o, const char* fn, const char* name, size_t n) {
    if (!py::isinstance<py::list>(o) && !py::isinstance<py::tuple>(o))
        throw py::type_error(std::string(fn) + " argument " + name + " must be a list of arrays");
    py::list l(o);
    if (l.size() != n)
        throw py::value_error(std::string(fn) + " argument " + name + " must hold " + std::to_string(n) +
                              " arrays, got " + std::to_string(l.size()));
    return l;
}

int checked_activation(int act, const char* fn) {
    if (act < 0 || act >= 6) throw py::value_error(std::string(fn) + ": activation code must be in [0, 6)");
    return act;
}

// Layer sizes from the weights: W[i] is (sizes[i], sizes[i+1]), each a 2-d array.
std::vector<int64_t> layer_sizes(const py::list& W, const char* fn) {
    std::vector<int64_t> sizes;
    for (size_t i = 0; i < W.size(); ++i) {
        if (!py::isinstance<py::array>(W[i]))
            throw py::type_error(std::string(fn) + " argument W[" + std::to_string(i) + "] must be a NumPy array");
        auto w = py::reinterpret_borrow<py::array>(W[i]);
        if (w.ndim() != 2)
            throw py::value_error(std::string(fn) + " argument W[" + std::to_string(i) + "] must be 2-d");
        if (i == 0) sizes.push_back(w.shape(0));
        sizes.push_back(w.shape(1));
    }
    for (int64_t s : sizes)
        if (s < 1 || s >= (int64_t{1} << 31))
            throw py::value_error(std::string(fn) + ": layer widths must be in [1, 2**31)");
    return sizes;
}

int64_t checked_rows(const py::handle& x, const char* fn) {
    if (!py::isinstance<py::array>(x)) throw py::type_error(std::string(fn) + " argument x must be a NumPy array");
    auto a = py::reinterpret_borrow<py::array>(x);
    if (a.ndim() != 2) throw py::value_error(std::string(fn) + " argument x must be 2-d, got " + shape_str(a));
    if (a.shape(0) >= (int64_t{1} << 31)) throw py::value_error(std::string(fn) + ": x must have < 2**31 rows");
    return a.shape(0);
}

template <class T>
void forward(const py::object& x, const py::object& W_, const py::object& b_, const py::object& out_, int act) {
    const char* fn = "mlp_forward";
    const py::list W = as_list(W_, fn, "W", py::len(W_));
    if (W.size() == 0) throw py::value_error("mlp_forward: W must hold at least one layer");
    const size_t n = W.size();
    const py::list b = as_list(b_, fn, "b", n), out = as_list(out_, fn, "out", n);
    const std::vector<int64_t> sizes = layer_sizes(W, fn);
    const int64_t rows = checked_rows(x, fn);
    MlpArgs<T> args(fn);
    std::vector<const T*> Wp(n), bp(n);
    std::vector<T*> op(n);
    cpu::MlpForward<T> a{rows, static_cast<int>(n), sizes.data(), checked_activation(act, fn), nullptr,
                         nullptr, nullptr, nullptr};
    a.x = args.take(x, "x", -1, rows, sizes[0], false);
    for (size_t i = 0; i < n; ++i) {
        const int j = static_cast<int>(i);
        Wp[i] = args.take(W[i], "W", j, sizes[i], sizes[i + 1], false);
        bp[i] = args.take(b[i], "b", j, sizes[i + 1], -1, false);
        op[i] = args.take(out[i], "out", j, rows, sizes[i + 1], true);
    }
    args.check_overlaps();
    a.W = Wp.data();
    a.b = bp.data();
    a.out = op.data();
    py::gil_scoped_release nogil;
    cpu::mlp_forward<T>(a);
}

template <class T>
bool backward(const py::object& x, const py::object& W_, const py::object& h_, const py::object& dout,
              const py::object& dh_, const py::object& dW_, const py::object& db_, const py::object& dx, int act,
              double scale) {
    const char* fn = "mlp_backward";
    const py::list W = as_list(W_, fn, "W", py::len(W_));
    if (W.size() == 0) throw py::value_error("mlp_backward: W must hold at least one layer");
    const size_t n = W.size();
    const py::list h = as_list(h_, fn, "h", n - 1), dh = as_list(dh_, fn, "dh", n - 1);
    const bool params = !dW_.is_none();
    const py::list dW = params ? as_list(dW_, fn, "dW", n) : py::list();
    const py::list db = params ? as_list(db_, fn, "db", n) : py::list();
    const std::vector<int64_t> sizes = layer_sizes(W, fn);
    const int64_t rows = checked_rows(x, fn);
    MlpArgs<T> args(fn);
    std::vector<const T*> Wp(n), hp(n);
    std::vector<T*> dhp(n), dWp(n), dbp(n);
    cpu::MlpBackward<T> a{};
    a.rows = rows;
    a.n_layers = static_cast<int>(n);
    a.sizes = sizes.data();
    a.activation = checked_activation(act, fn);
    a.scale = static_cast<T>(scale);
    a.x = args.take(x, "x", -1, rows, sizes[0], false);
    a.dout = args.take(dout, "dout", -1, rows, sizes[n], true);
    for (size_t i = 0; i < n; ++i) {
        const int j = static_cast<int>(i);
        Wp[i] = args.take(W[i], "W", j, sizes[i], sizes[i + 1], false);
        if (i + 1 < n) {
            hp[i] = args.take(h[i], "h", j, rows, sizes[i + 1], false);
            dhp[i] = args.take(dh[i], "dh", j, rows, sizes[i + 1], true);
        }
        if (params) {
            dWp[i] = args.take(dW[i], "dW", j, sizes[i], sizes[i + 1], true);
            dbp[i] = args.take(db[i], "db", j, sizes[i + 1], -1, true);
        }
    }
    a.dx = dx.is_none() ? nullptr : args.take(dx, "dx", -1, rows, sizes[0], true);
    args.check_overlaps();
    a.W = Wp.data();
    a.h = hp.data();
    a.dh = dhp.data();
    a.dW = params ? dWp.data() : nullptr;
    a.db = params ? dbp.data() : nullptr;
    py::gil_scoped_release nogil;
    return cpu::mlp_backward<T>(a);
}

template <class T>
void epilogue_forward(const py::object& y_, const py::object& b_, int act) {
    const char* fn = "bias_activation";
    const int64_t rows = checked_rows(y_, fn);
    const int64_t cols = py::reinterpret_borrow<py::array>(y_).shape(1);
    MlpArgs<T> args(fn);
    T* y = args.take(y_, "y", -1, rows, cols, true);
    const T* b = b_.is_none() ? nullptr : args.take(b_, "b", -1, cols, -1, false);
    args.check_overlaps();
    checked_activation(act, fn);
    py::gil_scoped_release nogil;
    cpu::bias_activation<T>(rows, cols, y, b, act);
}

template <class T>
void epilogue_backward(const py::object& d_, const py::object& y_, const py::object& db_, int act, double scale) {
    const char* fn = "activation_grad";
    const int64_t rows = checked_rows(d_, fn);
    const int64_t cols = py::reinterpret_borrow<py::array>(d_).shape(1);
    MlpArgs<T> args(fn);
    T* d = args.take(d_, "d", -1, rows, cols, true);
    checked_activation(act, fn);
    if (act != 0 && y_.is_none()) throw py::value_error("activation_grad: y is needed for a non-linear activation");
    const T* y = y_.is_none() ? nullptr : args.take(y_, "y", -1, rows, cols, false);
    T* db = db_.is_none() ? nullptr : args.take(db_, "db", -1, cols, -1, true);
    args.check_overlaps();
    py::gil_scoped_release nogil;
    cpu::activation_grad<T>(rows, cols, d, y, db, act, static_cast<T>(scale));
}

bool is_f64(const py::object& x) {
    return py::isinstance<py::array>(x) && py::reinterpret_borrow<py::array>(x).dtype().is(py::dtype::of<double>());
}

}  // namespace

void register_dense(py::module_& m) {
    m.def("mlp_forward", [](const py::object& x, const py::object& W, const py::object& b, const py::object& out,
                            int activation) {
        if (is_f64(x)) forward<double>(x, W, b, out, activation);
        else forward<float>(x, W, b, out, activation);
    }, py::arg("x"), py::arg("W"), py::arg("b"), py::arg("out"), py::arg("activation"),
    "out[i] = activation(in @ W[i] + b[i]) for every layer (none after the last); float32 or float64 (x's).");
    m.def("mlp_backward", [](const py::object& x, const py::object& W, const py::object& h, const py::object& dout,
                             const py::object& dh, const py::object& dW, const py::object& db, const py::object& dx,
                             int activation, double scale) {
        return is_f64(x) ? backward<double>(x, W, h, dout, dh, dW, db, dx, activation, scale)
                         : backward<float>(x, W, h, dout, dh, dW, db, dx, activation, scale);
    }, py::arg("x"), py::arg("W"), py::arg("h"), py::arg("dout"), py::arg("dh"), py::arg("dW"), py::arg("db"),
    py::arg("dx"), py::arg("activation"), py::arg("scale"),
    "Gradients of an MLP given d loss / d output (scaled by `scale`, overwritten): dW, db (unless None) and "
    "d loss / d x (unless dx is None); dh are work buffers. Returns whether every dW and db is finite.");
    m.def("bias_activation", [](const py::object& y, const py::object& b, int activation) {
        if (is_f64(y)) epilogue_forward<double>(y, b, activation);
        else epilogue_forward<float>(y, b, activation);
    }, py::arg("y"), py::arg("b"), py::arg("activation"),
    "In place: y (rows, cols) = activation(y + b) (b (cols,) or None).");
    m.def("activation_grad", [](const py::object& d, const py::object& y, const py::object& db, int activation,
                                double scale) {
        if (is_f64(d)) epilogue_backward<double>(d, y, db, activation, scale);
        else epilogue_backward<float>(d, y, db, activation, scale);
    }, py::arg("d"), py::arg("y"), py::arg("db"), py::arg("activation"), py::arg("scale"),
    "In place: d = (d scale) activation'(y), y the activation's output; db (cols,) = column sums of the new d "
    "unless None.");
    m.def("set_blas", [](uintptr_t sgemm, uintptr_t dgemm, bool ilp64) {
        cpu::set_blas(reinterpret_cast<void*>(sgemm), reinterpret_cast<void*>(dgemm), ilp64);
    }, py::arg("sgemm"), py::arg("dgemm"), py::arg("ilp64"),
    "The cblas_sgemm / cblas_dgemm entry points the MLPs call (addresses; 0, 0: the built-in GEMM).");
    m.def("have_blas", &cpu::have_blas, "Whether the MLPs call a BLAS (set_blas) rather than the built-in GEMM.");
}

}  // namespace vk::bind
