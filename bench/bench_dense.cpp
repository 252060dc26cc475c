// bench_dense: times the dense hot paths of a training step (Linear C->C, BatchNorm, LayerNorm,
// forward and backward, and the AdamW update) at N rows x C channels, and prints a markdown
// table next to two ceilings measured in the same run: copy bandwidth (device-to-device on CUDA,
// memcpy on the CPU) and a large F32 matmul.
//
//   bench_dense [--device cpu|cuda] [--rows N] [--repeats R]
//
// Each time is the median of R runs after warmup, with lapis::cuda_synchronize() before starting
// and before stopping the clock. Bytes are counted minimally: every input read once and every
// output written once (F32), so "GB/s" is a lower bound on the traffic the kernel really did.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/check.h"
#include "core/cuda_api.h"
#include "core/device.h"
#include "core/random.h"
#include "core/tensor.h"
#include "kernels/adam.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"

namespace lapis {
namespace {

struct Timing {
  int warmup = 3;
  int repeats = 20;
};

// Median wall time of one call of fn in milliseconds (synchronised before and after), and the
// per-call cost when 50 calls run back to back with one synchronisation at the end (what a
// training step pays), split into the host's enqueue time and the total: a total close to the
// host time means the op is bound by its host-side launch cost, not by the GPU.
struct Measure {
  double ms = 0;       // median, one synchronised call
  double b2b_us = 0;   // per call, 50 calls back to back
  double host_us = 0;  // per call, host time to enqueue them
};

Measure time_ms(const Timing& t, const std::function<void()>& fn) {
  for (int i = 0; i < t.warmup; ++i) fn();
  cuda_synchronize();
  std::vector<double> ms;
  for (int i = 0; i < t.repeats; ++i) {
    cuda_synchronize();
    const auto start = std::chrono::steady_clock::now();
    fn();
    cuda_synchronize();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(ms.begin(), ms.end());
  Measure m;
  m.ms = ms[ms.size() / 2];
  constexpr int kBackToBack = 50;
  cuda_synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kBackToBack; ++i) fn();
  const auto enqueued = std::chrono::steady_clock::now();
  cuda_synchronize();
  const auto done = std::chrono::steady_clock::now();
  m.host_us = std::chrono::duration<double, std::micro>(enqueued - start).count() / kBackToBack;
  m.b2b_us = std::chrono::duration<double, std::micro>(done - start).count() / kBackToBack;
  return m;
}

struct Row {
  std::string op, shape;
  Measure time;
  double bytes;  // minimal bytes read + written
  double flops;  // 0 when the op is bandwidth-bound
};

std::string shape_str(int64_t n, int64_t c) {
  return "[" + std::to_string(n) + ", " + std::to_string(c) + "]";
}

void bench_channels(std::vector<Row>& rows, const Timing& t, Device dev, int64_t n, int64_t c) {
  Generator gen(1);
  const double f = 4.0;  // bytes per F32
  const double nc = static_cast<double>(n) * static_cast<double>(c);
  const double cc = static_cast<double>(c) * static_cast<double>(c);
  const std::string shape = shape_str(n, c);
  Tensor x = Tensor::randn({n, c}, gen, Dtype::F32, dev);
  Tensor dy = Tensor::randn({n, c}, gen, Dtype::F32, dev);
  Tensor out = Tensor::empty({n, c}, Dtype::F32, dev);
  Tensor dx = Tensor::empty({n, c}, Dtype::F32, dev);

  // Linear C -> C: forward 2NC^2 flops; backward dx = dy W and dW += dy^T x, 4NC^2 flops.
  {
    Tensor w = Tensor::randn({c, c}, gen, Dtype::F32, dev, 0.0, 0.1);
    Tensor b = Tensor::zeros({c}, Dtype::F32, dev);
    Tensor dw = Tensor::zeros({c, c}, Dtype::F32, dev);
    Tensor db = Tensor::zeros({c}, Dtype::F32, dev);
    rows.push_back({"linear forward", shape + " x [" + std::to_string(c) + ", " +
                                          std::to_string(c) + "]",
                    time_ms(t, [&] { linear_forward(out, x, w, b); }),
                    f * (2 * nc + cc + c), 2 * nc * c});
    rows.push_back({"linear backward", rows.back().shape,
                    time_ms(t, [&] { linear_backward(dx, dw, db, dy, x, w); }),
                    f * (3 * nc + 3 * cc + 2 * c), 4 * nc * c});
  }
  // BatchNorm (training statistics): forward reads x, writes out; backward reads dy, x, writes dx.
  {
    Tensor w = Tensor::full({c}, 1.0, Dtype::F32, dev);
    Tensor b = Tensor::zeros({c}, Dtype::F32, dev);
    Tensor rm = Tensor::zeros({c}, Dtype::F32, dev);
    Tensor rv = Tensor::full({c}, 1.0, Dtype::F32, dev);
    Tensor dw = Tensor::zeros({c}, Dtype::F32, dev);
    Tensor db = Tensor::zeros({c}, Dtype::F32, dev);
    BatchNormCache cache;
    cache.mean = Tensor::empty({c}, Dtype::F32, dev);
    cache.rstd = Tensor::empty({c}, Dtype::F32, dev);
    rows.push_back({"batchnorm forward (train)", shape, time_ms(t, [&] {
                      batchnorm_forward_train(out, cache, rm, rv, x, w, b, 0.1, 1e-5);
                    }),
                    f * 2 * nc, 0});
    rows.push_back({"batchnorm backward", shape,
                    time_ms(t, [&] { batchnorm_backward(dx, dw, db, dy, x, w, cache); }),
                    f * 3 * nc, 0});
  }
  // LayerNorm: forward reads x, writes out and per-row mean/rstd; backward reads dy, x, mean,
  // rstd and writes dx.
  {
    Tensor w = Tensor::full({c}, 1.0, Dtype::F32, dev);
    Tensor b = Tensor::zeros({c}, Dtype::F32, dev);
    Tensor dw = Tensor::zeros({c}, Dtype::F32, dev);
    Tensor db = Tensor::zeros({c}, Dtype::F32, dev);
    LayerNormCache cache;
    cache.mean = Tensor::empty({n}, Dtype::F32, dev);
    cache.rstd = Tensor::empty({n}, Dtype::F32, dev);
    const double nn = static_cast<double>(n);
    rows.push_back({"layernorm forward", shape,
                    time_ms(t, [&] { layernorm_forward(out, cache, x, w, b, 1e-5); }),
                    f * (2 * nc + 2 * nn), 0});
    rows.push_back({"layernorm backward", shape,
                    time_ms(t, [&] { layernorm_backward(dx, dw, db, dy, x, w, cache); }),
                    f * (3 * nc + 2 * nn), 0});
  }
  // AdamW on a parameter of N x C elements: reads p, g, m, v; writes p, m, v.
  {
    Tensor p = Tensor::randn({n, c}, gen, Dtype::F32, dev);
    Tensor m = Tensor::zeros({n, c}, Dtype::F32, dev);
    Tensor v = Tensor::zeros({n, c}, Dtype::F32, dev);
    AdamHyper hyper;
    hyper.weight_decay = 0.01;
    int64_t step = 0;
    rows.push_back({"adamw step", shape,
                    time_ms(t, [&] { adam_step(p, m, v, dy, hyper, ++step); }), f * 7 * nc, 0});
  }
}

// The linears of one graph-transformer layer at N rows and C channels (C = 64 in the ZINC
// config): the FFN's C -> 2C with ReLU and 2C -> C with the residual, Q/K/V as one grouped
// product, and their backwards (through the ReLU; Q/K/V accumulating onto the residual branch).
void bench_gt_linears(std::vector<Row>& rows, const Timing& t, Device dev, int64_t n, int64_t c) {
  Generator gen(5);
  const double f = 4.0, nf = static_cast<double>(n), cf = static_cast<double>(c);
  auto rnd = [&](Shape s, double sd) { return Tensor::randn(s, gen, Dtype::F32, dev, 0.0, sd); };
  Tensor x = rnd({n, c}, 1.0), hidden = Tensor::empty({n, 2 * c}, Dtype::F32, dev);
  Tensor out = Tensor::empty({n, c}, Dtype::F32, dev), qkv = Tensor::empty({3, n, c}, Dtype::F32, dev);
  Tensor w1 = rnd({2 * c, c}, 0.1), b1 = rnd({2 * c}, 0.1), w2 = rnd({c, 2 * c}, 0.1);
  Tensor b2 = rnd({c}, 0.1), wqkv = rnd({3 * c, c}, 0.1);
  Tensor dw1 = Tensor::zeros({2 * c, c}, Dtype::F32, dev), db1 = Tensor::zeros({2 * c}, Dtype::F32, dev);
  Tensor dw2 = Tensor::zeros({c, 2 * c}, Dtype::F32, dev), db2 = Tensor::zeros({c}, Dtype::F32, dev);
  Tensor dwqkv = Tensor::zeros({3 * c, c}, Dtype::F32, dev), no_bias;
  Tensor dy = rnd({n, c}, 1.0), dqkv = rnd({3, n, c}, 1.0), dx = Tensor::zeros({n, c}, Dtype::F32, dev);
  Tensor dhidden = Tensor::empty({n, 2 * c}, Dtype::F32, dev);
  const std::string s1 = shape_str(n, c) + " -> " + shape_str(n, 2 * c);
  const std::string s2 = shape_str(n, 2 * c) + " -> " + shape_str(n, c);
  const std::string s3 = shape_str(n, c) + " -> [3, " + std::to_string(n) + ", " + std::to_string(c) + "]";
  const double fl1 = 2 * nf * cf * 2 * cf;
  rows.push_back({"GT linear fwd + relu", s1, time_ms(t, [&] { linear_forward(hidden, x, w1, b1, Tensor(), true); }),
                  f * (nf * cf + 2 * nf * cf), fl1});
  rows.push_back({"GT linear fwd + residual", s2, time_ms(t, [&] { linear_forward(out, hidden, w2, b2, x); }),
                  f * (2 * nf * cf + 2 * nf * cf), fl1});
  rows.push_back({"GT Q/K/V fwd (grouped)", s3, time_ms(t, [&] { linear_forward(qkv, x, wqkv, Tensor()); }),
                  f * 4 * nf * cf, 2 * nf * cf * 3 * cf});
  rows.push_back({"GT linear bwd through relu", s2, time_ms(t, [&] {
                    linear_backward(dhidden, dw2, db2, dy, hidden, w2, Tensor(), true);
                  }), f * (nf * cf + 4 * nf * cf), 2 * fl1});
  rows.push_back({"GT Q/K/V bwd (+ residual grad)", s3, time_ms(t, [&] {
                    linear_backward(dx, dwqkv, no_bias, dqkv, x, wqkv, /*dx_plus=*/dy);
                  }), f * (3 * nf * cf + 4 * nf * cf), 4 * nf * cf * 3 * cf});
  // The weight gradients of 8 C -> C linears, one by one and deferred into one launch (as a
  // graph-transformer backward does with all of its linears).
  std::vector<Tensor> dws, dbs;
  for (int i = 0; i < 8; ++i) {
    dws.push_back(Tensor::zeros({2 * c, c}, Dtype::F32, dev));
    dbs.push_back(Tensor::zeros({2 * c}, Dtype::F32, dev));
  }
  auto eight_weight_grads = [&](bool deferred) {
    DeferredWeightGrads batch;
    if (!deferred) batch.run();  // inactive: every call below runs immediately
    Tensor none;
    for (int i = 0; i < 8; ++i) linear_backward(none, dws[i], dbs[i], hidden, x, w1);
    batch.run();
  };
  const double wg_bytes = 8 * f * (3 * nf * cf), wg_flops = 8 * 2 * nf * cf * 2 * cf;
  rows.push_back({"8 weight grads, one by one", s1, time_ms(t, [&] { eight_weight_grads(false); }),
                  wg_bytes, wg_flops});
  rows.push_back({"8 weight grads, deferred", s1, time_ms(t, [&] { eight_weight_grads(true); }),
                  wg_bytes, wg_flops});
}

}  // namespace
}  // namespace lapis

int main(int argc, char** argv) {
  using namespace lapis;
  CLI::App app{"Times dense training ops against copy-bandwidth and matmul ceilings", "bench_dense"};
  std::string device_name = "cpu";
  int64_t rows = 0;
  int repeats = 0;
  app.add_option("--device", device_name, "cpu or cuda")->capture_default_str();
  app.add_option("--rows", rows, "Rows N (default 300000 on CUDA, 30000 on the CPU)");
  app.add_option("--repeats", repeats, "Timed runs per op, median reported (default 20 / 5)");
  CLI11_PARSE(app, argc, argv);

  try {
    const Device dev = Device::parse(device_name);
    if (dev.is_cuda()) {
      LAPIS_CHECK(cuda_available(), "bench_dense", "--device cuda: no CUDA device available",
                  built_with_cuda() ? "" : " (built without CUDA)");
    }
    const bool gpu = dev.is_cuda();
    if (rows <= 0) rows = gpu ? 300000 : 30000;
    Timing t;
    t.repeats = repeats > 0 ? repeats : (gpu ? 20 : 5);
    t.warmup = gpu ? 5 : 1;

    // ---- ceilings ----
    // Copy bandwidth: 1 GiB (CUDA, Tensor::copy_from device to device) or 256 MiB (CPU memcpy);
    // a copy reads and writes every byte, so bytes moved = 2 x size.
    const int64_t copy_elems = gpu ? (int64_t{1} << 28) : (int64_t{1} << 26);
    double copy_gbs = 0;
    {
      Tensor src = Tensor::full({copy_elems}, 1.0, Dtype::F32, dev);
      Tensor dst = Tensor::empty({copy_elems}, Dtype::F32, dev);
      Timing ct = t;
      ct.repeats = std::min(t.repeats, 10);
      const double ms = gpu ? time_ms(ct, [&] { dst.copy_from(src); }).ms
                            : time_ms(ct, [&] {
                                std::memcpy(dst.raw_data(), src.raw_data(), src.nbytes());
                              }).ms;
      copy_gbs = 2.0 * static_cast<double>(src.nbytes()) / (ms * 1e-3) / 1e9;
    }
    // Matmul: 8192^3 F32 on CUDA (cuBLAS, TF32 off), 1024^3 on the CPU (Eigen).
    const int64_t mm = gpu ? 8192 : 1024;
    double mm_tflops = 0;
    {
      Generator gen(2);
      Tensor a = Tensor::randn({mm, mm}, gen, Dtype::F32, dev);
      Tensor b = Tensor::randn({mm, mm}, gen, Dtype::F32, dev);
      Tensor c = Tensor::empty({mm, mm}, Dtype::F32, dev);
      Timing mt = t;
      mt.repeats = std::min(t.repeats, 5);
      mt.warmup = 1;
      const double ms = time_ms(mt, [&] { matmul(c, a, b); }).ms;
      mm_tflops = 2.0 * std::pow(static_cast<double>(mm), 3) / (ms * 1e-3) / 1e12;
    }

    std::vector<Row> results;
    for (int64_t c : {64, 128}) bench_channels(results, t, dev, rows, c);
    bench_gt_linears(results, t, dev, rows, 64);

    std::printf("## bench_dense: %s, N = %lld rows, median of %d runs\n\n",
                gpu ? cuda_device_description(0).c_str() : "CPU (single thread reference)",
                static_cast<long long>(rows), t.repeats);
    std::printf("Ceilings: copy %.1f GB/s (%s, %lld MiB), F32 matmul %lld^3 %.2f TFLOP/s\n\n",
                copy_gbs, gpu ? "device-to-device" : "memcpy",
                static_cast<long long>(copy_elems * 4 / (1024 * 1024)),
                static_cast<long long>(mm), mm_tflops);
    std::printf("| op | shape | time ms | achieved | of ceiling | back-to-back us/call | host us/call |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (const Row& r : results) {
      const double s = r.time.ms * 1e-3;
      char achieved[64], ratio[32];
      if (r.flops > 0) {
        const double tf = r.flops / s / 1e12;
        std::snprintf(achieved, sizeof(achieved), "%.2f TFLOP/s (%.0f GB/s)", tf,
                      r.bytes / s / 1e9);
        std::snprintf(ratio, sizeof(ratio), "%.0f%% matmul", 100.0 * tf / mm_tflops);
      } else {
        const double gbs = r.bytes / s / 1e9;
        std::snprintf(achieved, sizeof(achieved), "%.1f GB/s", gbs);
        std::snprintf(ratio, sizeof(ratio), "%.0f%% copy", 100.0 * gbs / copy_gbs);
      }
      std::printf("| %s | %s | %.3f | %s | %s | %.1f | %.1f |\n", r.op.c_str(),
                  r.shape.c_str(), r.time.ms, achieved, ratio, r.time.b2b_us, r.time.host_us);
    }
  } catch (const lapis::Error& e) {
    std::fprintf(stderr, "bench_dense: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
