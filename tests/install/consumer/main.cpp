// Uses an installed Lapis: builds two tensors, multiplies them on the CPU, prints the result.
#include <cstdio>

#include "core/device.h"
#include "core/tensor.h"
#include "kernels/matmul.h"

int main() {
  using lapis::Tensor;
  const Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  const Tensor b = Tensor::from_vector<float>({5, 6, 7, 8}, {2, 2});
  Tensor out = Tensor::empty({2, 2});
  lapis::matmul(out, a, b);
  const std::vector<float> v = out.to_vector<float>();
  std::printf("lapis consumer: matmul [[%g, %g], [%g, %g]] (CUDA built: %s)\n", v[0], v[1], v[2],
              v[3], lapis::built_with_cuda() ? "yes" : "no");
  return 0;
}
