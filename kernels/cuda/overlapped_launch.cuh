// Programmatic dependent launch (Hopper, sm_90): a kernel launched with launch_overlapped may be
// scheduled while the kernel before it in the stream is still running; its blocks become
// resident and wait in wait_for_previous_kernel() until that kernel has finished and its writes
// are visible. The ~1-2 us between two dependent kernels (the next grid's launch and block
// dispatch after the previous one drains) then overlaps the previous kernel's tail, which
// matters when a training step is ~170 launches of a few microseconds each (ZINC).
//
// Contract for a kernel launched this way: every thread calls wait_for_previous_kernel() before
// its first global memory access (reads and writes: the previous kernel may still read what this
// one overwrites). The call also releases the next overlapped launch, so at most one kernel runs
// ahead. LAPIS_CUDA_OVERLAP=0 in the environment turns it off (plain launches, same results).
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/cuda/cuda_check.h"

namespace lapis {
namespace cuda {

__device__ inline void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

inline bool overlapped_launches_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("LAPIS_CUDA_OVERLAP");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// kernel<<<grid, block, 0, stream()>>>(args...) as a programmatic dependent launch; checks it.
template <typename... Params, typename... Args>
void launch_overlapped(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = 0;
  config.stream = stream();
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = overlapped_launches_enabled() ? 1 : 0;
  LAPIS_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace cuda
}  // namespace lapis
