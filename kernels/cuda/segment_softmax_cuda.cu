// Segment softmax on CUDA (kernels/segment_softmax.h), on the row passes of
// kernels/cuda/graph_block_passes.cuh with one lane per (segment, head): the forward finds each
// segment's max and sum of exponentials in one online pass, then normalises the segment; the
// backward sums alpha * dL_dalpha per segment, then applies it; one launch each. Consecutive
// lanes are consecutive heads of one segment, so the [E, H] reads are contiguous. Segments longer
// than 128 edges are split across lanes and combined in a fixed order (three more launches), so
// results are deterministic.
#include "core/cuda/cuda_check.h"
#include "kernels/cuda/graph_block_passes.cuh"
#include "kernels/cuda/graph_ops_cuda.h"

namespace lapis {
namespace cuda {

namespace {

// Runs the reducing pass RowPass and, when long segments were split, the per-edge pass
// PiecePass over their pieces.
template <class RowPass, class PiecePass, typename T>
void run_segments(T* out, const int32_t* ptr, const T* x, const T* y, int64_t n, int64_t num_edges,
                  int64_t heads, int64_t max_segment_length, Device device) {
  SegmentArgs<T> a{};
  static_cast<RowPassShape&>(a) = row_pass_shape(n, num_edges, heads, 1);
  a.out = out;
  a.ptr = ptr;
  a.x = x;
  a.y = y;
  a.split = splits_rows(num_edges, max_segment_length);
  Tensor stats;
  if (a.split) {
    stats = Tensor::empty(Shape{n, heads, 2}, dtype_of<T>(), device);
    a.stats = stats.data<T>();
  }
  run_pass<RowPass>(a, max_segment_length, device);
  if (a.split) run_heavy_pieces<PiecePass>(a);
}

}  // namespace

void segment_softmax_forward(Tensor& alpha, const Tensor& score, const Tensor& in_ptr,
                             int64_t max_segment_length) {
  const int64_t n = in_ptr.numel() - 1, e = score.size(0), h = score.size(1);
  if (n <= 0 || score.numel() == 0) return;
  LAPIS_DISPATCH_FLOAT(score.dtype(), "segment_softmax_forward", [&] {
    using T = scalar_t;
    run_segments<SoftmaxForwardPass<T>, SoftmaxNormalizePass<T>, T>(
        alpha.data<T>(), in_ptr.data<int32_t>(), score.data<T>(), nullptr, n, e, h,
        max_segment_length, score.device());
  });
}

void segment_softmax_backward(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                              const Tensor& in_ptr, int64_t max_segment_length) {
  const int64_t n = in_ptr.numel() - 1, e = alpha.size(0), h = alpha.size(1);
  if (n <= 0 || alpha.numel() == 0) return;
  LAPIS_DISPATCH_FLOAT(alpha.dtype(), "segment_softmax_backward", [&] {
    using T = scalar_t;
    run_segments<SoftmaxBackwardPass<T>, SoftmaxGradPass<T>, T>(
        dL_dscore.data<T>(), in_ptr.data<int32_t>(), alpha.data<T>(), dL_dalpha.data<T>(), n, e,
        h, max_segment_length, alpha.device());
  });
}

}  // namespace cuda
}  // namespace lapis
