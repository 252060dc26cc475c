// `lapis info`: version, CUDA build and runtime status, device and allocator statistics.
#include <cstdio>
#include <iostream>

#include "apps/lapis/commands.h"
#include "apps/lapis/digits.h"
#include "core/cuda_api.h"
#include "core/device.h"

namespace lapis {
namespace apps {
namespace {

std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

int run_info() {
  std::cout << "lapis " << lapis_version() << "\n";
  const bool built = built_with_cuda();
  std::cout << "CUDA built:     " << (built ? "yes" : "no (LAPIS_WITH_CUDA=OFF or no nvcc)")
            << "\n";
  const int count = cuda_device_count();
  std::cout << "CUDA available: " << (count > 0 ? "yes" : "no");
  if (count > 0) std::cout << " (" << count << " device" << (count > 1 ? "s" : "") << ")";
  std::cout << "\n";
  for (int i = 0; i < count; ++i) {
    std::cout << "  cuda:" << i << "  " << cuda_device_description(i) << "\n";
  }
  if (built) {
    const cuda::AllocatorStats s = cuda::allocator_stats();
    std::cout << "CUDA allocator: " << s.cuda_malloc_calls << " cudaMalloc, "
              << s.cuda_free_calls << " cudaFree, " << s.cache_hits << " cache hits, "
              << mib(s.bytes_reserved) << " reserved, " << mib(s.bytes_in_use) << " in use\n";
  }
  std::cout << "embedded data:  digits.csv (" << embedded_digits_csv_size() << " bytes)\n";
  return 0;
}

}  // namespace

Subcommand add_info_command(CLI::App& parent) {
  CLI::App* app = parent.add_subcommand(
      "info", "Show the version, whether CUDA is built and available, and device details");
  return {app, run_info};
}

}  // namespace apps
}  // namespace lapis
