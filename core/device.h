// Where a Tensor's memory lives. Asking about CUDA never throws.
#pragma once

#include <string>

namespace lapis {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  // Parses "cpu", "cuda" or "cuda:N"; throws lapis::Error on anything else.
  static Device parse(const std::string& text);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string to_string() const;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// True when this build contains the CUDA kernels (LAPIS_WITH_CUDA).
bool built_with_cuda() noexcept;
// Number of usable CUDA devices: 0 without CUDA support, without a driver, or on any error.
int cuda_device_count() noexcept;
inline bool cuda_available() noexcept { return cuda_device_count() > 0; }
// Waits until all queued work on the library stream has finished (no-op on CPU-only builds).
void cuda_synchronize();
// One line describing the device: name, memory, compute capability ("" when not available).
std::string cuda_device_description(int index = 0);

}  // namespace lapis
