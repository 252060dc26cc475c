// The CUDA services of core/cuda_api.h for a build without CUDA: queries answer "none",
// everything that would touch a device throws the one "built without CUDA" error.
#include <string>

#include "core/cuda_api.h"
#include "core/device.h"

namespace lapis {

bool built_with_cuda() noexcept { return false; }
int cuda_device_count() noexcept { return 0; }
void cuda_synchronize() {}
std::string cuda_device_description(int) { return ""; }

namespace cuda {
void* device_alloc(size_t) { throw_no_cuda("cuda::device_alloc"); }
void device_free(void*) noexcept {}
AllocatorStats allocator_stats() { return {}; }
void empty_cache() {}
void copy_host_to_device(void*, const void*, size_t) { throw_no_cuda("cuda::copy_host_to_device"); }
void copy_device_to_host(void*, const void*, size_t) { throw_no_cuda("cuda::copy_device_to_host"); }
void copy_device_to_device(void*, const void*, size_t) { throw_no_cuda("cuda::copy_device_to_device"); }
void memset_zero(void*, size_t) { throw_no_cuda("cuda::memset_zero"); }
void fill_bits(void*, size_t, size_t, uint64_t) { throw_no_cuda("cuda::fill_bits"); }
void synchronize() {}
void check_device_errors() {}
void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }
}  // namespace cuda

}  // namespace lapis
