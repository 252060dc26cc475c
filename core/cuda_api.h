// Host-side CUDA services used by the tensor core, with no CUDA types in the interface so that
// CPU-only code compiles with g++ alone. In a build without CUDA each function throws
// lapis::Error("lapis built without CUDA: ...").
#pragma once

#include <cstddef>
#include <cstdint>

namespace lapis {
namespace cuda {

// Device memory from the caching allocator. Freed blocks return to a per-size cache and are
// reused, so a training loop's steady state calls cudaMalloc/cudaFree zero times. All work runs
// on one library stream, so a block freed here may be reused at once (stream order protects it).
void* device_alloc(size_t nbytes);
void device_free(void* ptr) noexcept;

struct AllocatorStats {
  uint64_t cuda_malloc_calls = 0;  // cudaMalloc calls since start
  uint64_t cuda_free_calls = 0;    // cudaFree calls since start
  uint64_t cache_hits = 0;         // allocations served from the cache
  size_t bytes_reserved = 0;       // held from CUDA (in use + cached)
  size_t bytes_in_use = 0;         // handed out to tensors
};
AllocatorStats allocator_stats();
// Returns cached (unused) blocks to CUDA.
void empty_cache();

// Copies and fills on the library stream. Copies to the host wait for completion.
void copy_host_to_device(void* dst, const void* src, size_t nbytes);
void copy_device_to_host(void* dst, const void* src, size_t nbytes);
void copy_device_to_device(void* dst, const void* src, size_t nbytes);
void memset_zero(void* dst, size_t nbytes);
// Fills n elements of `elem_size` bytes (4 or 8) with the bit pattern of `value_bits`.
void fill_bits(void* dst, size_t n, size_t elem_size, uint64_t value_bits);

// Waits for the library stream, then throws any error a kernel reported on the device.
void synchronize();
// Throws (and clears) a pending device-side error; waits for the stream first.
void check_device_errors();
// TF32 tensor-core math for F32 matmuls (off by default: F32 results match the CPU closely).
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace cuda

// Throws the single "built without CUDA" error for `what`.
[[noreturn]] void throw_no_cuda(const char* what);

}  // namespace lapis

// LAPIS_CUDA_CALL(fn, args...): calls the CUDA implementation `fn`, or, in a CPU-only build,
// throws "lapis built without CUDA: cannot call fn". Used by every op's dispatch.
#if defined(LAPIS_WITH_CUDA)
#define LAPIS_CUDA_CALL(fn, ...) fn(__VA_ARGS__)
#else
#define LAPIS_CUDA_CALL(fn, ...) ::lapis::throw_no_cuda(#fn)
#endif
