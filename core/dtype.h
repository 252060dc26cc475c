// Element types of a Tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lapis {

enum class Dtype { F32, F64, I32, I64 };

inline size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::F32: return 4;
    case Dtype::F64: return 8;
    case Dtype::I32: return 4;
    case Dtype::I64: return 8;
  }
  return 0;
}

inline const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::F32: return "f32";
    case Dtype::F64: return "f64";
    case Dtype::I32: return "i32";
    case Dtype::I64: return "i64";
  }
  return "?";
}

inline bool is_floating(Dtype d) { return d == Dtype::F32 || d == Dtype::F64; }
inline bool is_integer(Dtype d) { return d == Dtype::I32 || d == Dtype::I64; }

// Maps a C++ type to its Dtype: dtype_of<float>() == Dtype::F32.
template <typename T> constexpr Dtype dtype_of();
template <> constexpr Dtype dtype_of<float>() { return Dtype::F32; }
template <> constexpr Dtype dtype_of<double>() { return Dtype::F64; }
template <> constexpr Dtype dtype_of<int32_t>() { return Dtype::I32; }
template <> constexpr Dtype dtype_of<int64_t>() { return Dtype::I64; }

}  // namespace lapis

// Runs the body with `scalar_t` bound to the C++ type of a floating dtype.
#define LAPIS_DISPATCH_FLOAT(dtype, op, ...)                                         \
  [&] {                                                                              \
    switch (dtype) {                                                                 \
      case ::lapis::Dtype::F32: { using scalar_t = float; return __VA_ARGS__(); }    \
      case ::lapis::Dtype::F64: { using scalar_t = double; return __VA_ARGS__(); }   \
      default:                                                                       \
        LAPIS_FAIL(op, "expected a floating dtype (f32 or f64), got ",               \
                   ::lapis::dtype_name(dtype));                                      \
    }                                                                                \
  }()

// Runs the body with `index_t` bound to the C++ type of an integer dtype.
#define LAPIS_DISPATCH_INDEX(dtype, op, ...)                                         \
  [&] {                                                                              \
    switch (dtype) {                                                                 \
      case ::lapis::Dtype::I32: { using index_t = int32_t; return __VA_ARGS__(); }   \
      case ::lapis::Dtype::I64: { using index_t = int64_t; return __VA_ARGS__(); }   \
      default:                                                                       \
        LAPIS_FAIL(op, "expected an index dtype (i32 or i64), got ",                 \
                   ::lapis::dtype_name(dtype));                                      \
    }                                                                                \
  }()
