// The engine's view of a .onebit graph: typed values and op records (no JSON, no Python, no torch).
//
// Python reads and validates the file (onebit/export/graph.py is the schema; reference.py the spec
// of every op) and hands the engine these records through the binding; the engine re-checks the sizes
// it relies on (array lengths against shapes) before it plans or runs anything.
//
// Memory layout inside the engine (per sample; the batch is the outermost dimension):
//   float [C, H, W]:  H*W*C float32, NHWC (channel innermost).      float [F]: F float32.
//   bits  [C, H, W]:  H*W*words_for(C) uint64, one row of words per pixel (bitpack.h).
//   bits  [F]:        words_for(F) uint64.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "onebit/bitpack.h"

namespace onebit {

enum class ValueKind : int { kFloat = 0, kBits = 1 };
enum class Domain : int { kPm1 = 0, kZeroOne = 1 };

struct ValueDef {
  ValueKind kind = ValueKind::kFloat;
  std::vector<std::int64_t> shape;  // [C, H, W] or [F]
  Domain domain = Domain::kPm1;     // bits only

  std::int64_t c() const { return shape[0]; }
  std::int64_t h() const { return shape.size() == 3 ? shape[1] : 1; }
  std::int64_t w() const { return shape.size() == 3 ? shape[2] : 1; }
  std::int64_t pixels() const { return h() * w(); }
  // Bytes of one sample in the layout above.
  std::int64_t bytes() const {
    return kind == ValueKind::kFloat ? pixels() * c() * 4 : pixels() * words_for(c()) * 8;
  }
};

struct OpDef {
  std::string type;  // "bconv2d", "conv2d", ... (graph.py OPS)
  std::string name;  // module path, for error messages
  std::vector<int> inputs, outputs;  // value indices
  std::map<std::string, std::vector<std::int64_t>> ints;  // integer and boolean attributes
  std::map<std::string, double> reals;
  std::map<std::string, std::string> strs;
  std::map<std::string, std::vector<float>> f32;
  std::map<std::string, std::vector<std::uint64_t>> u64;
  std::map<std::string, std::vector<std::int32_t>> i32;
  std::map<std::string, std::vector<std::uint8_t>> u8;
};

struct GraphDef {
  std::vector<ValueDef> values;
  std::vector<OpDef> ops;
  int input = -1;
  int output = -1;
};

}  // namespace onebit
