#include "core/device.h"

#include "core/check.h"
#include "core/cuda_api.h"

namespace lapis {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    const std::string idx = text.substr(5);
    LAPIS_CHECK(!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos,
                "Device::parse", "bad device index in '", text, "'");
    return cuda(std::stoi(idx));
  }
  LAPIS_FAIL("Device::parse", "unknown device '", text, "' (expected cpu, cuda or cuda:N)");
}

std::string Device::to_string() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

void throw_no_cuda(const char* what) {
  throw Error(str_cat("lapis built without CUDA: cannot call ", what,
                      " (rebuild with -DLAPIS_WITH_CUDA=ON)"));
}

}  // namespace lapis
