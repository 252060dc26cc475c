// CUDA Adam / AdamW update and multi-tensor zeroing (host-only declarations; kernels/adam.h
// documents the semantics).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/adam.h"

namespace lapis {
namespace cuda {

// One fused element-wise kernel: decay, moment updates and the parameter step in one pass.
void adam_step(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamHyper& hyper,
               int64_t step);

// Layout of a multi-tensor table in device memory: num_tensors entries, then num_chunks chunks,
// in one allocation (built on the host by kernels/adam.cpp; plain data, no CUDA types).
struct MultiTensorEntry {
  void* ptr[4];   // Adam: param, grad, m, v. Zero: the tensor, then three nullptr.
  int64_t numel;  // Adam: elements. Zero: 4-byte words (nbytes / 4).
};
struct MultiTensorChunk {
  int64_t tensor;  // entry index
  int64_t start;   // first element (word) of the chunk; it ends kMultiTensorChunk later or at numel
};
// Elements per chunk; one thread block per chunk. ZINC's 250 parameter tensors (589k elements,
// most of them 64-element biases and 4096-element weights) give ~290 chunks.
constexpr int64_t kMultiTensorChunk = 4096;

// adam_step over every chunk of the table (all tensors of `dtype`, F32 or F64), one launch.
// entries, chunks: device pointers into one table; num_chunks >= 1.
void adam_step_multi(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                     int64_t num_chunks, Dtype dtype, const AdamHyper& hyper, int64_t step);
// Zeroes every word of every entry's ptr[0], one launch.
void zero_multi(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                int64_t num_chunks);

}  // namespace cuda
}  // namespace lapis
