// cuSPARSE operands of the graph kernels (host only): the graph's CSR with per-edge values and
// row-major dense matrices as descriptors destroyed with the object, and a call with a
// workspace from the device cache. Shared by the single-head SpMM and SDDMM paths.
#pragma once

#include <cusparse.h>

#include <cstdint>
#include <utility>

#include "core/cuda/cuda_check.h"
#include "core/cuda_api.h"
#include "kernels/graph_view.h"

namespace lapis {
namespace cuda {

// The n x n CSR of g (in_ptr, src; edge e = entry e) with values [E], f32.
class CusparseCsr {
 public:
  CusparseCsr(const CsrGraphView& g, float* values) {
    LAPIS_CUSPARSE_CHECK(cusparseCreateCsr(&desc_, g.num_nodes, g.num_nodes, g.num_edges,
                                           g.in_ptr.data<int32_t>(), g.src.data<int32_t>(), values,
                                           CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I,
                                           CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F));
  }
  ~CusparseCsr() { cusparseDestroySpMat(desc_); }
  CusparseCsr(const CusparseCsr&) = delete;
  CusparseCsr& operator=(const CusparseCsr&) = delete;
  cusparseSpMatDescr_t get() const { return desc_; }

 private:
  cusparseSpMatDescr_t desc_ = nullptr;
};

// A rows x cols row-major f32 matrix (leading dimension cols).
class CusparseDense {
 public:
  CusparseDense(int64_t rows, int64_t cols, float* data) {
    LAPIS_CUSPARSE_CHECK(
        cusparseCreateDnMat(&desc_, rows, cols, cols, data, CUDA_R_32F, CUSPARSE_ORDER_ROW));
  }
  ~CusparseDense() { cusparseDestroyDnMat(desc_); }
  CusparseDense(const CusparseDense&) = delete;
  CusparseDense& operator=(const CusparseDense&) = delete;
  cusparseDnMatDescr_t get() const { return desc_; }

 private:
  cusparseDnMatDescr_t desc_ = nullptr;
};

// run(buffer) with a workspace of `bytes` (nullptr when 0) from the device cache; checks the
// returned status. The caching allocator reuses the block in stream order, so freeing it right
// after the (asynchronous) call is safe.
template <class Run>
void run_with_workspace(size_t bytes, Run&& run) {
  void* buffer = bytes > 0 ? device_alloc(bytes) : nullptr;
  const cusparseStatus_t status = std::forward<Run>(run)(buffer);
  if (buffer != nullptr) device_free(buffer);
  LAPIS_CUSPARSE_CHECK(status);
}

}  // namespace cuda
}  // namespace lapis
