// Thin nanobind bindings of the binary layer kernels (bconv2d, acc2bits, acc2float, bmaxpool):
// shape / dtype / contract checks with clear errors, then the kernel with the GIL released.
// Registered from module.cpp (bind_layers).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "onebit/kernels.h"
#include "onebit/sparse_rows.h"

namespace nb = nanobind;
using namespace onebit;

namespace {

using Words4 = nb::ndarray<const std::uint64_t, nb::ndim<4>, nb::c_contig, nb::device::cpu>;
using OutWords4 = nb::ndarray<std::uint64_t, nb::ndim<4>, nb::c_contig, nb::device::cpu>;
using AnyOut = nb::ndarray<nb::c_contig, nb::device::cpu>;
using FloatVec = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Int32Vec = nb::ndarray<const std::int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Uint8Vec = nb::ndarray<const std::uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Int32Rows = nb::ndarray<const std::int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using OutWordRows = nb::ndarray<std::uint64_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using OutFloatRows = nb::ndarray<float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Pair = std::pair<std::int64_t, std::int64_t>;

[[noreturn]] void fail(const std::string& op, const std::string& what) { throw std::invalid_argument(op + ": " + what); }

std::string str(std::int64_t v) { return std::to_string(v); }


// A per-channel vector argument (or None when optional): its data, after checking its length.
template <class Vec>
auto vec_arg(const nb::object& obj, std::int64_t channels, const char* op, const char* name, bool required)
    -> decltype(std::declval<Vec>().data()) {
  if (obj.is_none()) {
    if (required) fail(op, std::string(name) + " is required");
    return nullptr;
  }
  Vec v = nb::cast<Vec>(obj);
  if (static_cast<std::int64_t>(v.shape(0)) != channels) {
    fail(op, std::string(name) + " must have one value per output channel (" + str(channels) + "), got " +
                 str(static_cast<std::int64_t>(v.shape(0))));
  }
  return v.data();
}

// Nonzero padding bits past `bits` in the last word of each `seg_words`-word segment break the
// popcount identities: rejected, never silently wrong.
void check_segments(const std::uint64_t* data, std::int64_t count, std::int64_t seg_words, std::int64_t bits,
                    const char* op, const char* name) {
  const int used = static_cast<int>(bits % kWordBits);
  if (used == 0) return;
  const word_t padding = ~word_t{0} << used;
  for (std::int64_t s = 0; s < count; ++s) {
    if (data[s * seg_words + seg_words - 1] & padding) {
      fail(op, std::string(name) + " has nonzero padding bits in segment " + str(s) + " (each group of " +
                   str(bits) + " channels must be packed with exactly that many bits)");
    }
  }
}

void check_geometry(const Bconv2dArgs& a) {
  const char* op = "bconv2d";
  if (a.groups < 1 || a.in_channels < 1 || a.in_channels % a.groups || a.out_channels % a.groups) {
    fail(op, "groups (" + str(a.groups) + ") must divide in_channels (" + str(a.in_channels) +
                 ") and out_channels (" + str(a.out_channels) + ")");
  }
  if (a.stride_h < 1 || a.stride_w < 1 || a.dilation_h < 1 || a.dilation_w < 1 || a.pad_h < 0 || a.pad_w < 0) {
    fail(op, "stride and dilation must be >= 1 and padding >= 0");
  }
  if (a.kernel_h < 1 || a.kernel_w < 1 || a.out_height() < 1 || a.out_width() < 1) {
    fail(op, "the output would be empty: input " + str(a.height) + "x" + str(a.width) + ", kernel " +
                 str(a.kernel_h) + "x" + str(a.kernel_w) + " (after padding and dilation)");
  }
  if (a.kernel_h * a.kernel_w * (a.in_channels / a.groups) > std::numeric_limits<std::int32_t>::max()) {
    fail(op, "KH * KW * in_channels / groups must be < 2**31");
  }
  const bool ok = a.mode != BgemmMode::kAnd ? (a.pad_value >= -1 && a.pad_value <= 1) : (a.pad_value == 0 || a.pad_value == 1);
  if (!ok) fail(op, "pad_value " + str(a.pad_value) + " is not valid; xor and mask modes: +1, 0, -1; and mode: 0, 1");
}

// The output of bconv2d: kind from which transform arguments are given, `out` checked against it.
OutputTransform parse_output(AnyOut out, std::int64_t rows, std::int64_t c_out, const nb::object& multiplier,
                             const nb::object& bias, const nb::object& threshold, const nb::object& flip,
                             std::int64_t out_groups) {
  const char* op = "bconv2d";
  OutputTransform t;
  t.out = out.data();
  std::int64_t cols = c_out;
  if (!multiplier.is_none() && !threshold.is_none()) fail(op, "give multiplier (float output) or threshold (bits), not both");
  if (!threshold.is_none()) {
    if (out_groups < 1 || c_out % out_groups) fail(op, "out_groups must divide out_channels");
    t.kind = OutputKind::kBits;
    t.threshold = vec_arg<Int32Vec>(threshold, c_out, op, "threshold", true);
    t.flip = vec_arg<Uint8Vec>(flip, c_out, op, "flip", false);
    t.out_groups = out_groups;
    cols = grouped_words(c_out, out_groups);
    if (out.dtype() != nb::dtype<std::uint64_t>()) fail(op, "out must be uint64 for bit output");
  } else if (!multiplier.is_none()) {
    t.kind = OutputKind::kFloat;
    t.multiplier = vec_arg<FloatVec>(multiplier, c_out, op, "multiplier", true);
    t.bias = vec_arg<FloatVec>(bias, c_out, op, "bias", false);
    if (out.dtype() != nb::dtype<float>()) fail(op, "out must be float32 for float output");
  } else if (out.dtype() != nb::dtype<std::int32_t>()) {
    fail(op, "out must be int32 (no multiplier or threshold given)");
  }
  if (!bias.is_none() && t.kind != OutputKind::kFloat) fail(op, "bias needs multiplier");
  if (!flip.is_none() && t.kind != OutputKind::kBits) fail(op, "flip needs threshold");
  if (out.ndim() != 4 || static_cast<std::int64_t>(out.shape(0) * out.shape(1) * out.shape(2)) != rows ||
      static_cast<std::int64_t>(out.shape(3)) != cols) {
    fail(op, "out must have shape (N, OH, OW, " + str(cols) + ") with N*OH*OW = " + str(rows));
  }
  return t;
}

std::string bconv2d(Words4 x, Words4 weight, AnyOut out, std::int64_t in_channels, Pair stride, Pair padding,
                    Pair dilation, std::int64_t groups, int mode, int pad_value, nb::object multiplier, nb::object bias,
                    nb::object threshold, nb::object flip, std::int64_t out_groups, nb::object pixel_range,
                    const std::string& variant) {
  if (mode < 0 || mode > 2) fail("bconv2d", "mode must be 0 (xor), 1 (and) or 2 (mask)");
  auto dim = [](const Words4& t, int i) { return static_cast<std::int64_t>(t.shape(i)); };
  Bconv2dArgs a{x.data(), dim(x, 0), dim(x, 1), dim(x, 2), in_channels, groups, weight.data(), dim(weight, 0),
                dim(weight, 1), dim(weight, 2), stride.first, stride.second, padding.first, padding.second,
                dilation.first, dilation.second, static_cast<BgemmMode>(mode), pad_value, {}, 0, 0};
  check_geometry(a);
  const std::int64_t cg = in_channels / groups, wg = words_for(cg);
  if (dim(x, 3) != groups * wg) {
    fail("bconv2d", "x must have " + str(groups * wg) + " words per pixel (" + str(groups) + " groups of " +
                        str(wg) + " words for " + str(cg) + " channels), got " + str(dim(x, 3)));
  }
  if (dim(weight, 3) != wg) fail("bconv2d", "weight must have " + str(wg) + " words per tap, got " + str(dim(weight, 3)));
  check_segments(x.data(), dim(x, 0) * dim(x, 1) * dim(x, 2) * groups, wg, cg, "bconv2d", "x");
  check_segments(weight.data(), dim(weight, 0) * dim(weight, 1) * dim(weight, 2), wg, cg, "bconv2d", "weight");
  const std::int64_t pixels = a.batch * a.out_height() * a.out_width();
  a.output = parse_output(out, pixels, a.out_channels, multiplier, bias, threshold, flip, out_groups);
  a.pixel_end = pixels;
  if (!pixel_range.is_none()) {
    const auto r = nb::cast<Pair>(pixel_range);
    if (r.first < 0 || r.first > r.second || r.second > pixels) fail("bconv2d", "pixel_range must lie in [0, " + str(pixels) + "]");
    a.pixel_begin = r.first;
    a.pixel_end = r.second;
  }
  // kMask: the block-sparse weights of each group, built here from `weight` (an engine builds them
  // once at load).
  std::vector<SparseRowsStorage> store;
  std::vector<SparseRows> views;
  if (a.mode == BgemmMode::kMask) {
    const std::int64_t og = a.out_channels / groups, row = a.kernel_h * a.kernel_w * wg;
    for (std::int64_t g = 0; g < groups; ++g) store.push_back(make_sparse_rows(weight.data() + g * og * row, og, row, row));
    for (const auto& st : store) views.push_back(st.view());
    a.sparse = views.data();
  }
  const auto& k = pick_kernel(bconv2d_kernels(), variant);
  {
    nb::gil_scoped_release release;
    k.fn(a);
  }
  return k.variant;
}

std::string acc2bits(Int32Rows acc, OutWordRows out, nb::object threshold, nb::object flip, std::int64_t groups,
                     const std::string& variant) {
  const std::int64_t rows = static_cast<std::int64_t>(acc.shape(0)), c = static_cast<std::int64_t>(acc.shape(1));
  if (groups < 1 || c % groups) fail("acc2bits", "groups must divide the channels");
  if (static_cast<std::int64_t>(out.shape(0)) != rows || static_cast<std::int64_t>(out.shape(1)) != grouped_words(c, groups)) {
    fail("acc2bits", "out must have shape (rows, " + str(grouped_words(c, groups)) + ")");
  }
  Acc2BitsArgs a{acc.data(), rows, c, c, vec_arg<Int32Vec>(threshold, c, "acc2bits", "threshold", true),
                 vec_arg<Uint8Vec>(flip, c, "acc2bits", "flip", false), groups, out.data()};
  const auto& k = pick_kernel(acc2bits_kernels(), variant);
  {
    nb::gil_scoped_release release;
    k.fn(a);
  }
  return k.variant;
}

std::string acc2float_binding(Int32Rows acc, OutFloatRows out, nb::object multiplier, nb::object bias,
                              const std::string& variant) {
  const std::int64_t rows = static_cast<std::int64_t>(acc.shape(0)), c = static_cast<std::int64_t>(acc.shape(1));
  if (static_cast<std::int64_t>(out.shape(0)) != rows || static_cast<std::int64_t>(out.shape(1)) != c) {
    fail("acc2float", "out must have the shape of acc");
  }
  const float* m = vec_arg<FloatVec>(multiplier, c, "acc2float", "multiplier", true);
  const float* b = vec_arg<FloatVec>(bias, c, "acc2float", "bias", false);
  const auto& k = pick_kernel(acc2float_kernels(), variant);
  {
    nb::gil_scoped_release release;
    k.fn(Acc2FloatArgs{acc.data(), rows, c, c, m, b, out.data()});
  }
  return k.variant;
}

// Every window of every output position must hold a valid tap (bmaxpool.h).
void check_windows(std::int64_t size, std::int64_t kernel, std::int64_t stride, std::int64_t pad, std::int64_t dil) {
  const std::int64_t outs = conv_out_size(size, kernel, stride, pad, dil);
  if (kernel < 1 || stride < 1 || dil < 1 || pad < 0 || outs < 1) {
    fail("bmaxpool", "kernel, stride, dilation must be >= 1, padding >= 0, and the output non-empty");
  }
  if (2 * pad > (kernel - 1) * dil + 1) fail("bmaxpool", "padding must be at most half the (dilated) kernel size");
  for (std::int64_t o = 0; o < outs; ++o) {
    bool any = false;
    for (std::int64_t k = 0; k < kernel && !any; ++k) {
      const std::int64_t i = o * stride - pad + k * dil;
      any = i >= 0 && i < size;
    }
    if (!any) fail("bmaxpool", "output position " + str(o) + " has a window entirely in the padding");
  }
}

std::string bmaxpool(Words4 x, OutWords4 out, Pair kernel, Pair stride, Pair padding, Pair dilation, int mode,
                     nb::object and_mask, const std::string& variant) {
  if (mode != 0 && mode != 1) fail("bmaxpool", "mode must be 0 (sign: +-1) or 1 (heaviside: {0,1})");
  auto dim = [](const auto& t, int i) { return static_cast<std::int64_t>(t.shape(i)); };
  BmaxpoolArgs a{x.data(), dim(x, 0), dim(x, 1), dim(x, 2), dim(x, 3), kernel.first, kernel.second, stride.first,
                 stride.second, padding.first, padding.second, dilation.first, dilation.second,
                 static_cast<PackMode>(mode), out.data()};
  if (!and_mask.is_none()) {
    auto m = nb::cast<nb::ndarray<const std::uint64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>>(and_mask);
    if (static_cast<std::int64_t>(m.shape(0)) != a.words) fail("bmaxpool", "and_mask must have one word per input word");
    a.and_mask = m.data();
  }
  check_windows(a.height, a.kernel_h, a.stride_h, a.pad_h, a.dilation_h);
  check_windows(a.width, a.kernel_w, a.stride_w, a.pad_w, a.dilation_w);
  const std::int64_t oh = conv_out_size(a.height, a.kernel_h, a.stride_h, a.pad_h, a.dilation_h);
  const std::int64_t ow = conv_out_size(a.width, a.kernel_w, a.stride_w, a.pad_w, a.dilation_w);
  if (dim(out, 0) != a.batch || dim(out, 1) != oh || dim(out, 2) != ow || dim(out, 3) != a.words) {
    fail("bmaxpool", "out must have shape (" + str(a.batch) + ", " + str(oh) + ", " + str(ow) + ", " + str(a.words) + ")");
  }
  const auto& k = pick_kernel(bmaxpool_kernels(), variant);
  {
    nb::gil_scoped_release release;
    k.fn(a);
  }
  return k.variant;
}

}  // namespace

void bind_layers(nb::module_& m) {
  // Outputs are .noconvert(): a converted temporary would leave the caller's array unwritten.
  m.def("bconv2d", &bconv2d, nb::arg("x"), nb::arg("weight"), nb::arg("out").noconvert(), nb::arg("in_channels"),
        nb::arg("stride"), nb::arg("padding"), nb::arg("dilation"), nb::arg("groups"), nb::arg("mode"),
        nb::arg("pad_value"), nb::arg("multiplier").none() = nb::none(), nb::arg("bias").none() = nb::none(),
        nb::arg("threshold").none() = nb::none(), nb::arg("flip").none() = nb::none(), nb::arg("out_groups") = 1,
        nb::arg("pixel_range").none() = nb::none(), nb::arg("variant") = "",
        "Binary conv2d on packed NHWC input (bconv2d.h) with an optional fused output transform "
        "(output_transform.h); returns the variant that ran.");
  m.def("acc2bits", &acc2bits, nb::arg("acc"), nb::arg("out").noconvert(), nb::arg("threshold"),
        nb::arg("flip").none() = nb::none(), nb::arg("groups") = 1, nb::arg("variant") = "",
        "int32 rows -> packed bits: bit = flip ? acc > thr : acc < thr (output_transform.h).");
  m.def("acc2float", &acc2float_binding, nb::arg("acc"), nb::arg("out").noconvert(), nb::arg("multiplier"),
        nb::arg("bias").none() = nb::none(), nb::arg("variant") = "",
        "int32 rows -> float: acc * multiplier + bias, two roundings (output_transform.h); returns the variant.");
  m.def("bmaxpool", &bmaxpool, nb::arg("x"), nb::arg("out").noconvert(), nb::arg("kernel"), nb::arg("stride"),
        nb::arg("padding"), nb::arg("dilation"), nb::arg("mode"), nb::arg("and_mask").none() = nb::none(),
        nb::arg("variant") = "",
        "Binary max-pool on packed NHWC bits (bmaxpool.h): AND (mode 0, +-1) or OR (mode 1, {0,1}).");
}
