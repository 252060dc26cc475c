// Shared test helpers: device parameterisation, CUDA skip rules, closeness checks and an F64
// central-difference gradient check.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lapis {
namespace testing {

// True when LAPIS_REQUIRE_CUDA=1: then a CUDA test that cannot run fails instead of skipping.
bool cuda_required();
// "" when CUDA can run here; otherwise the reason (no CUDA in this build / no device).
std::string cuda_unavailable_reason();

// Sizes that catch off-by-one and warp-boundary bugs.
inline const std::vector<int64_t>& odd_sizes() {
  static const std::vector<int64_t> sizes = {1, 7, 31, 32, 33, 257};
  return sizes;
}

// Max over elements of |a - e| / (atol + rtol * |e|) <= 1, with a readable failure message
// naming the worst element. Both tensors are compared as F64 on the host.
::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected,
                                     double atol, double rtol);
// Bitwise equality of two tensors (same dtype and shape).
::testing::AssertionResult bitwise_equal(const Tensor& a, const Tensor& b);

// Runs fn and expects a lapis::Error whose message contains every one of parts.
void expect_error_mentions(const std::function<void()>& fn, const std::vector<std::string>& parts);

// Sum of a * b over all elements (F64 on the host).
double dot(const Tensor& a, const Tensor& b);

// Central-difference check of an analytic gradient. `loss` evaluates a scalar from the current
// contents of x (an F64 CPU tensor, perturbed in place); analytic is dloss/dx, same shape.
// Checks every element when x has at most max_checked elements, otherwise a fixed spread.
::testing::AssertionResult gradient_matches(const std::function<double()>& loss, Tensor& x,
                                            const Tensor& analytic, double step = 1e-6,
                                            double tol = 1e-6, int64_t max_checked = 400);

}  // namespace testing
}  // namespace lapis

// Skips the current test visibly when CUDA cannot run here; with LAPIS_REQUIRE_CUDA=1 fails it.
#define LAPIS_REQUIRE_CUDA_OR_SKIP()                                                  \
  do {                                                                               \
    const std::string lapis_reason_ = ::lapis::testing::cuda_unavailable_reason();   \
    if (!lapis_reason_.empty()) {                                                    \
      if (::lapis::testing::cuda_required()) {                                       \
        FAIL() << "LAPIS_REQUIRE_CUDA=1 but " << lapis_reason_;                      \
      } else {                                                                       \
        GTEST_SKIP() << "CUDA test skipped: " << lapis_reason_;                      \
      }                                                                              \
    }                                                                                \
  } while (0)
