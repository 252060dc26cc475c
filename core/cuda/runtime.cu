// CUDA side of the tensor core: device queries, the library stream and handles, the caching
// allocator, copies and fills.
#include <cuda_runtime.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/cuda_api.h"
#include "core/device.h"

namespace lapis {

bool built_with_cuda() noexcept { return true; }

int cuda_device_count() noexcept {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" / "no device" error
    return 0;
  }
  return count;
}

void cuda_synchronize() {
  if (cuda_device_count() > 0) cuda::check_device_errors();
}

std::string cuda_device_description(int index) {
  if (index >= cuda_device_count()) return "";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return str_cat(prop.name, ", ", prop.totalGlobalMem >> 20, " MiB, compute capability ",
                 prop.major, ".", prop.minor, ", ", prop.multiProcessorCount,
                 " multiprocessors");
}

namespace cuda {

void throw_cuda_error(const char* expr, cudaError_t status, const char* file, int line) {
  (void)file;
  (void)line;
  throw Error(str_cat("CUDA error ", static_cast<int>(status), " (", cudaGetErrorName(status),
                      ": ", cudaGetErrorString(status), ") in ", expr));
}

void throw_cublas_error(const char* expr, cublasStatus_t status, const char* file, int line) {
  (void)file;
  (void)line;
  throw Error(str_cat("cuBLAS error ", static_cast<int>(status), " (",
                      cublasGetStatusName(status), ") in ", expr));
}

void throw_cusparse_error(const char* expr, cusparseStatus_t status, const char* file, int line) {
  (void)file;
  (void)line;
  throw Error(str_cat("cuSPARSE error ", static_cast<int>(status), " (",
                      cusparseGetErrorString(status), ") in ", expr));
}

namespace {

void require_device(const char* what) {
  LAPIS_CHECK(cuda_device_count() > 0, what,
              "no CUDA device is available (no GPU or no driver on this machine)");
}

// The objects below are created once and deliberately never destroyed: destroying them during
// static destruction races with the CUDA runtime's own teardown.
struct Globals {
  std::once_flag stream_once, cublas_once, cusparse_once;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cusparseHandle_t cusparse = nullptr;
  std::atomic<bool> allow_tf32{false};
  std::once_flag error_once;
  int* error_flag = nullptr;
};
Globals& globals() {
  static Globals* g = new Globals();
  return *g;
}

// Caching allocator. Sizes are rounded up into buckets (powers of two, each split in four), so
// batches of slightly different size (graph batches vary) reuse the same blocks; waste is < 25%.
// Freed blocks go back to their bucket's list. One stream means a freed block is safe to hand
// out again immediately: later work on the stream runs after the work that used it.
class CachingAllocator {
 public:
  void* allocate(size_t nbytes) {
    const size_t size = bucket_size(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    auto& free_list = free_[size];
    void* ptr = nullptr;
    if (!free_list.empty()) {
      ptr = free_list.back();
      free_list.pop_back();
      ++stats_.cache_hits;
    } else {
      ptr = malloc_with_retry(size, nbytes);
      stats_.bytes_reserved += size;
    }
    live_[ptr] = size;
    stats_.bytes_in_use += size;
    return ptr;
  }

  void release(void* ptr) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours: never free foreign pointers
    free_[it->second].push_back(ptr);
    stats_.bytes_in_use -= it->second;
    live_.erase(it);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached_locked();
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  static size_t bucket_size(size_t n) {
    if (n <= 512) return 512;
    size_t p = 512;
    while (p < n) p <<= 1;  // p: smallest power of two >= n
    const size_t quarter = p / 8;  // p/2 .. p in four steps of p/8
    size_t b = p / 2;
    while (b < n) b += quarter;
    return b;
  }

  void* malloc_with_retry(size_t size, size_t requested) {
    void* ptr = nullptr;
    cudaError_t status = cudaMalloc(&ptr, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached_locked();
      status = cudaMalloc(&ptr, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw Error(str_cat("cuda::device_alloc: cudaMalloc of ", requested, " bytes failed (",
                          cudaGetErrorString(status), "); ", stats_.bytes_in_use,
                          " bytes in use by tensors"));
    }
    ++stats_.cuda_malloc_calls;
    return ptr;
  }

  void release_cached_locked() {
    // Blocks in the cache may still be read by queued kernels; wait for the stream first.
    cudaStreamSynchronize(stream());
    for (auto& [size, list] : free_) {
      for (void* p : list) {
        cudaFree(p);
        ++stats_.cuda_free_calls;
        stats_.bytes_reserved -= size;
      }
      list.clear();
    }
  }

  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> live_;
  AllocatorStats stats_;
};

CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

// Pinned staging ring for host-to-device copies. A cudaMemcpyAsync from pageable memory may
// synchronise with the stream before staging ("the driver may synchronize with the stream"),
// which stops the host from running ahead of the GPU: a training step uploads a dozen small
// batch tensors, and each such wait drains the queue. Small copies therefore go through this
// ring of page-locked memory: memcpy into the ring, then a truly asynchronous copy on the
// library stream, with an event recorded per region. A region is reused only after its event
// has completed (in steady state long before the ring wraps, so nobody waits). Large copies
// (over a quarter of the ring) go directly from pageable memory.
class PinnedStaging {
 public:
  static constexpr size_t kCapacity = size_t{16} << 20;

  // Copies src to dst (device) through the ring; false when the copy should not be staged.
  bool copy(void* dst, const void* src, size_t nbytes) {
    if (nbytes == 0 || nbytes > kCapacity / 4) return false;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!ring_) {
      if (cudaHostAlloc(&ring_, kCapacity, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();  // no pinned memory available: fall back to pageable copies
        ring_ = nullptr;
        disabled_ = true;
      }
    }
    if (disabled_) return false;
    const size_t size = (nbytes + 255) & ~size_t{255};  // keep regions 256-byte aligned
    // Pending regions in FIFO order are in ring order starting just after head_: the previous
    // lap's regions at [head_, end of ring), then this lap's at [0, head_).
    if (head_ + size > kCapacity) {
      // Wrap: the previous lap's tail regions are the oldest; retire them first.
      while (!pending_.empty() && pending_.front().begin >= head_) retire_front();
      head_ = 0;
    }
    const size_t begin = head_, end = head_ + size;
    while (!pending_.empty() && pending_.front().begin < end && begin < pending_.front().end) {
      retire_front();
    }
    char* slot = static_cast<char*>(ring_) + begin;
    std::memcpy(slot, src, nbytes);
    LAPIS_CUDA_CHECK(cudaMemcpyAsync(dst, slot, nbytes, cudaMemcpyHostToDevice, stream()));
    cudaEvent_t done;
    if (spare_.empty()) {
      LAPIS_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    } else {
      done = spare_.back();
      spare_.pop_back();
    }
    LAPIS_CUDA_CHECK(cudaEventRecord(done, stream()));
    pending_.push_back({begin, end, done});
    head_ = end;
    return true;
  }

 private:
  struct Region {
    size_t begin, end;
    cudaEvent_t done;
  };
  // Waits until the oldest region's copy has completed (normally long done) and frees it.
  void retire_front() {
    LAPIS_CUDA_CHECK(cudaEventSynchronize(pending_.front().done));
    spare_.push_back(pending_.front().done);
    pending_.pop_front();
  }
  std::mutex mutex_;
  void* ring_ = nullptr;
  bool disabled_ = false;
  size_t head_ = 0;
  std::deque<Region> pending_;
  std::vector<cudaEvent_t> spare_;
};

PinnedStaging& pinned_staging() {
  static PinnedStaging* s = new PinnedStaging();  // never destroyed: outlives static tensors
  return *s;
}

template <typename T>
__global__ void fill_kernel(T* dst, size_t n, T value) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[i] = value;
}

}  // namespace

cudaStream_t stream() {
  Globals& g = globals();
  std::call_once(g.stream_once, [&] {
    require_device("cuda::stream");
    LAPIS_CUDA_CHECK(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
  });
  return g.stream;
}

cublasHandle_t cublas_handle() {
  Globals& g = globals();
  std::call_once(g.cublas_once, [&] {
    LAPIS_CUBLAS_CHECK(cublasCreate(&g.cublas));
    LAPIS_CUBLAS_CHECK(cublasSetStream(g.cublas, stream()));
  });
  LAPIS_CUBLAS_CHECK(cublasSetMathMode(
      g.cublas, g.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return g.cublas;
}

cusparseHandle_t cusparse_handle() {
  Globals& g = globals();
  std::call_once(g.cusparse_once, [&] {
    LAPIS_CUSPARSE_CHECK(cusparseCreate(&g.cusparse));
    LAPIS_CUSPARSE_CHECK(cusparseSetStream(g.cusparse, stream()));
  });
  return g.cusparse;
}

int* device_error_flag() {
  Globals& g = globals();
  std::call_once(g.error_once, [&] {
    require_device("cuda::device_error_flag");
    LAPIS_CUDA_CHECK(cudaMalloc(&g.error_flag, sizeof(int)));
    LAPIS_CUDA_CHECK(cudaMemset(g.error_flag, 0, sizeof(int)));
  });
  return g.error_flag;
}

void check_device_errors() {
  LAPIS_CUDA_CHECK(cudaStreamSynchronize(stream()));
  Globals& g = globals();
  if (!g.error_flag) return;
  int code = 0;
  LAPIS_CUDA_CHECK(cudaMemcpy(&code, g.error_flag, sizeof(int), cudaMemcpyDeviceToHost));
  if (code == kNoDeviceError) return;
  LAPIS_CUDA_CHECK(cudaMemset(g.error_flag, 0, sizeof(int)));
  switch (code) {
    case kIndexOutOfRange:
      throw Error("CUDA kernel: an index was out of range (gather, scatter or embedding)");
    case kLabelOutOfRange:
      throw Error("CUDA kernel: a class label was out of range (cross_entropy)");
    case kBadSegmentPointers:
      throw Error("CUDA kernel: segment pointers were not sorted within [0, rows]");
    default:
      throw Error(str_cat("CUDA kernel reported error code ", code));
  }
}

void* device_alloc(size_t nbytes) {
  require_device("cuda::device_alloc");
  return allocator().allocate(nbytes);
}

void device_free(void* ptr) noexcept { allocator().release(ptr); }

AllocatorStats allocator_stats() { return allocator().stats(); }

void empty_cache() {
  if (cuda_device_count() > 0) allocator().empty_cache();
}

void copy_host_to_device(void* dst, const void* src, size_t nbytes) {
  // Either way the caller may free or reuse `src` as soon as this returns: the ring holds a
  // copy, and a pageable cudaMemcpyAsync returns once the source has been staged.
  if (pinned_staging().copy(dst, src, nbytes)) return;
  LAPIS_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream()));
}

void copy_device_to_host(void* dst, const void* src, size_t nbytes) {
  LAPIS_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, stream()));
  check_device_errors();  // waits for the stream
}

void copy_device_to_device(void* dst, const void* src, size_t nbytes) {
  LAPIS_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream()));
}

void memset_zero(void* dst, size_t nbytes) {
  LAPIS_CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, stream()));
}

void fill_bits(void* dst, size_t n, size_t elem_size, uint64_t value_bits) {
  const int block = 256;
  const unsigned grid = grid_for(static_cast<int64_t>(n < (1u << 24) ? n : (1u << 24)), block);
  if (elem_size == 4) {
    uint32_t v = static_cast<uint32_t>(value_bits);
    fill_kernel<uint32_t><<<grid, block, 0, stream()>>>(static_cast<uint32_t*>(dst), n, v);
  } else {
    fill_kernel<uint64_t><<<grid, block, 0, stream()>>>(static_cast<uint64_t*>(dst), n,
                                                        value_bits);
  }
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

void synchronize() { cuda_synchronize(); }

void set_allow_tf32(bool allow) { globals().allow_tf32 = allow; }
bool allow_tf32() { return globals().allow_tf32; }

}  // namespace cuda
}  // namespace lapis
