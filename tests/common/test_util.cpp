#include "tests/common/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace lapis {
namespace testing {

bool cuda_required() {
  const char* v = std::getenv("LAPIS_REQUIRE_CUDA");
  return v != nullptr && std::string(v) == "1";
}

std::string cuda_unavailable_reason() {
  if (!built_with_cuda()) return "this build has no CUDA support (LAPIS_WITH_CUDA=OFF)";
  if (cuda_device_count() == 0) return "no CUDA device on this machine";
  return "";
}

namespace {
std::vector<double> host_f64(const Tensor& t) { return t.to(Dtype::F64).to_vector<double>(); }
}  // namespace

::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double atol,
                                     double rtol) {
  if (!actual.defined() || !expected.defined())
    return ::testing::AssertionFailure() << "undefined tensor";
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape mismatch: " << actual.describe() << " vs "
                                         << expected.describe();
  const std::vector<double> a = host_f64(actual), e = host_f64(expected);
  double worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = std::abs(a[i] - e[i]);
    const double err = diff == 0.0 ? 0.0 : diff / (atol + rtol * std::abs(e[i]));
    const bool bad = std::isnan(a[i]) != std::isnan(e[i]) || !(err <= 1.0);
    if (std::isnan(a[i]) && std::isnan(e[i])) continue;
    if (bad && (worst <= 1.0 || err > worst || std::isnan(err))) {
      worst = std::isnan(err) ? 1e300 : err;
      worst_i = i;
    }
  }
  if (worst > 1.0) {
    return ::testing::AssertionFailure()
           << "element " << worst_i << " of " << actual.describe() << ": actual "
           << a[worst_i] << " vs expected " << e[worst_i] << " (atol " << atol << ", rtol "
           << rtol << ")";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape())
    return ::testing::AssertionFailure() << a.describe() << " vs " << b.describe();
  const Tensor ha = a.to(Device::cpu()), hb = b.to(Device::cpu());
  const auto* pa = static_cast<const unsigned char*>(ha.numel() ? ha.raw_data() : nullptr);
  const auto* pb = static_cast<const unsigned char*>(hb.numel() ? hb.raw_data() : nullptr);
  for (size_t i = 0; i < ha.nbytes(); ++i)
    if (pa[i] != pb[i])
      return ::testing::AssertionFailure() << "byte " << i << " differs (" << a.describe() << ")";
  return ::testing::AssertionSuccess();
}

void expect_error_mentions(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected a lapis::Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const auto& p : parts) EXPECT_NE(what.find(p), std::string::npos) << what;
  }
}

double dot(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = host_f64(a), y = host_f64(b);
  double s = 0.0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) s += x[i] * y[i];
  return s;
}

::testing::AssertionResult gradient_matches(const std::function<double()>& loss, Tensor& x,
                                            const Tensor& analytic, double step, double tol,
                                            int64_t max_checked) {
  if (x.dtype() != Dtype::F64 || !x.device().is_cpu())
    return ::testing::AssertionFailure() << "gradient check needs an f64 CPU tensor, got "
                                         << x.describe();
  if (analytic.shape() != x.shape())
    return ::testing::AssertionFailure() << "analytic gradient " << analytic.describe()
                                         << " does not match x " << x.describe();
  const std::vector<double> g = host_f64(analytic);
  double* p = x.data<double>();
  const int64_t n = x.numel();
  const int64_t stride = n <= max_checked ? 1 : (n + max_checked - 1) / max_checked;
  for (int64_t i = 0; i < n; i += stride) {
    const double saved = p[i];
    p[i] = saved + step;
    const double up = loss();
    p[i] = saved - step;
    const double down = loss();
    p[i] = saved;
    const double numeric = (up - down) / (2.0 * step);
    const double err = std::abs(numeric - g[i]) / std::max(1.0, std::abs(numeric));
    if (!(err <= tol)) {
      return ::testing::AssertionFailure()
             << "d loss / d x[" << i << "]: analytic " << g[i] << " vs numeric " << numeric
             << " (relative error " << err << " > " << tol << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace testing
}  // namespace lapis
