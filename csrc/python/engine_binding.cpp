// nanobind binding of onebit::Engine: converts the op records Python prepared (from a validated
// .onebit file, see onebit/engine.py) into a GraphDef, checks call arguments, releases the GIL.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <stdexcept>
#include <string>

#include "../engine/float_gemm.h"
#include "onebit/engine.h"

namespace nb = nanobind;
using namespace onebit;

namespace {

template <class T>
using Vec = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
template <class T>
using Arrays = std::map<std::string, Vec<T>>;

using ValueRec = std::tuple<int, std::vector<std::int64_t>, int>;
using OpRec = std::tuple<std::string, std::string, std::vector<int>, std::vector<int>,
                         std::map<std::string, std::vector<std::int64_t>>, std::map<std::string, double>,
                         std::map<std::string, std::string>, Arrays<float>, Arrays<std::uint64_t>,
                         Arrays<std::int32_t>, Arrays<std::uint8_t>>;

template <class T>
std::map<std::string, std::vector<T>> copy_arrays(const Arrays<T>& in) {
  std::map<std::string, std::vector<T>> out;
  for (const auto& [k, v] : in) out[k] = std::vector<T>(v.data(), v.data() + v.shape(0));
  return out;
}

GraphDef make_graph(const std::vector<ValueRec>& values, const std::vector<OpRec>& ops, int input, int output) {
  GraphDef g;
  for (const auto& [kind, shape, domain] : values) {
    if ((kind != 0 && kind != 1) || (domain != 0 && domain != 1) || (shape.size() != 1 && shape.size() != 3))
      throw std::invalid_argument("engine: bad value record");
    for (auto d : shape) {
      if (d < 1) throw std::invalid_argument("engine: value dimensions must be positive");
    }
    g.values.push_back({static_cast<ValueKind>(kind), shape, static_cast<Domain>(domain)});
  }
  for (const auto& r : ops) {
    OpDef d;
    d.type = std::get<0>(r);
    d.name = std::get<1>(r);
    d.inputs = std::get<2>(r);
    d.outputs = std::get<3>(r);
    d.ints = std::get<4>(r);
    d.reals = std::get<5>(r);
    d.strs = std::get<6>(r);
    d.f32 = copy_arrays(std::get<7>(r));
    d.u64 = copy_arrays(std::get<8>(r));
    d.i32 = copy_arrays(std::get<9>(r));
    d.u8 = copy_arrays(std::get<10>(r));
    g.ops.push_back(std::move(d));
  }
  g.input = input;
  g.output = output;
  return g;
}

// Index of the first NaN/Inf in x[0, n), or -1. One branch-free pass (exponent bits all ones), then a
// second only on failure. The engine refuses non-finite inputs: sign(NaN) would silently differ from
// PyTorch's (ste_sign(nan) = -1, the packers' bit 0 = +1).
std::int64_t first_non_finite(const float* x, std::int64_t n) {
  const auto* bits = reinterpret_cast<const std::uint32_t*>(x);
  std::uint32_t bad = 0;
  for (std::int64_t i = 0; i < n; ++i) bad |= static_cast<std::uint32_t>((bits[i] & 0x7f800000u) == 0x7f800000u);
  if (!bad) return -1;
  for (std::int64_t i = 0; i < n; ++i) {
    if ((bits[i] & 0x7f800000u) == 0x7f800000u) return i;
  }
  return -1;
}

void run(const Engine& e, nb::ndarray<const float, nb::ndim<4>, nb::c_contig, nb::device::cpu> x,
         nb::ndarray<float, nb::c_contig, nb::device::cpu> out) {
  const ValueDef& in = e.input();
  if (static_cast<std::int64_t>(x.shape(1)) != in.c() || static_cast<std::int64_t>(x.shape(2)) != in.h() ||
      static_cast<std::int64_t>(x.shape(3)) != in.w())
    throw std::invalid_argument("engine: input shape does not match the model");
  const std::int64_t batch = static_cast<std::int64_t>(x.shape(0));
  const ValueDef& o = e.output();
  if (out.ndim() < 1 || static_cast<std::int64_t>(out.shape(0)) != batch ||
      static_cast<std::int64_t>(out.size()) != batch * o.c() * o.pixels())
    throw std::invalid_argument("engine: output array has the wrong size");
  if (batch == 0) return;  // an empty batch gives an empty output
  std::int64_t bad;
  {
    nb::gil_scoped_release release;
    bad = first_non_finite(x.data(), static_cast<std::int64_t>(x.size()));
    if (bad < 0) e.run(x.data(), batch, out.data());
  }
  if (bad >= 0) {
    const std::int64_t per = in.c() * in.pixels();
    throw std::invalid_argument("engine: the input is not finite (NaN or Inf at sample " + std::to_string(bad / per) +
                                ", flat index " + std::to_string(bad % per) + "); the engine refuses non-finite inputs");
  }
}

// run() that also returns the wall time of every op (seconds, graph order).
std::vector<double> run_profile(const Engine& e, nb::ndarray<const float, nb::ndim<4>, nb::c_contig, nb::device::cpu> x,
                                nb::ndarray<float, nb::c_contig, nb::device::cpu> out) {
  run(e, x, out);  // checks the arguments (and warms up)
  std::vector<double> seconds;
  nb::gil_scoped_release release;
  e.run(x.data(), static_cast<std::int64_t>(x.shape(0)), out.data(), &seconds);
  return seconds;
}

}  // namespace

void bind_engine(nb::module_& m) {
  nb::class_<Engine>(m, "Engine")
      .def("__init__",
           [](Engine* self, const std::vector<ValueRec>& values, const std::vector<OpRec>& ops, int input, int output,
              int num_threads) {
             // The engine throws std::invalid_argument on an inconsistent graph; any other logic_error
             // (std::out_of_range from a map lookup, ...) is the same kind of problem: report it as one.
             try {
               new (self) Engine(make_graph(values, ops, input, output), num_threads);
             } catch (const std::invalid_argument&) {
               throw;
             } catch (const std::logic_error& err) {
               throw std::invalid_argument(std::string("engine: inconsistent op records (") + err.what() + ")");
             }
           },
           nb::arg("values"), nb::arg("ops"), nb::arg("input"), nb::arg("output"), nb::arg("num_threads") = 1)
      .def("run", &run, nb::arg("x"), nb::arg("out").noconvert(),
           "Run on an (N, C, H, W) float32 array into `out` (N x output elements); thread-safe.")
      .def("run_profile", &run_profile, nb::arg("x"), nb::arg("out").noconvert(),
           "run() once to check and warm up, then once more timing every op: seconds per op, graph order.")
      .def_prop_ro("num_threads", &Engine::num_threads)
      .def_prop_ro("arena_bytes_per_sample", &Engine::arena_bytes_per_sample)
      .def_prop_ro("packed_weight_bytes", &Engine::packed_weight_bytes);
  m.def("float_gemm_backend", [] { return std::string(engine::float_gemm_backend()); },
        "The engine's float GEMM: OpenBLAS (scipy-openblas32) or the C++ fallback.");
}
