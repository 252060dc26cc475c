#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "core/tensor.h"
#include "kernels/adam.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

struct AdamState {
  Tensor p, m, v;
};

AdamState make_state(const Tensor& p0) {
  return {p0.clone(), Tensor::zeros(p0.shape(), p0.dtype(), p0.device()),
          Tensor::zeros(p0.shape(), p0.dtype(), p0.device())};
}

TEST(Adam, FirstTwoStepsOfAScalarByHand) {
  AdamHyper h;
  h.lr = 0.1;
  h.weight_decay = 0.0;
  AdamState s = make_state(Tensor::from_vector<double>({1.0}, {1}));
  // Step 1, g = 0.5: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25,
  // p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.900000002.
  adam_step(s.p, s.m, s.v, Tensor::from_vector<double>({0.5}, {1}), h, 1);
  EXPECT_NEAR(s.m.item(), 0.05, 1e-15);
  EXPECT_NEAR(s.v.item(), 0.00025, 1e-15);
  EXPECT_NEAR(s.p.item(), 1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-14);
  // Step 2, g = -0.25: m = 0.045 - 0.025 = 0.02, v = 0.00024975 + 0.0000625 = 0.00031225,
  // m_hat = 0.02 / 0.19, v_hat = 0.00031225 / 0.001999, p = 0.8733662987078463.
  adam_step(s.p, s.m, s.v, Tensor::from_vector<double>({-0.25}, {1}), h, 2);
  EXPECT_NEAR(s.m.item(), 0.02, 1e-15);
  EXPECT_NEAR(s.v.item(), 0.00031225, 1e-15);
  const double expected =
      0.900000002 - 0.1 * (0.02 / 0.19) / (std::sqrt(0.00031225 / 0.001999) + 1e-8);
  EXPECT_NEAR(s.p.item(), expected, 1e-14);
  EXPECT_NEAR(s.p.item(), 0.8733662987078463, 1e-12);
}

TEST(Adam, F32MatchesHandValues) {
  AdamHyper h;
  h.lr = 0.1;
  AdamState s = make_state(Tensor::from_vector<float>({1.0f}, {1}));
  adam_step(s.p, s.m, s.v, Tensor::from_vector<float>({0.5f}, {1}), h, 1);
  adam_step(s.p, s.m, s.v, Tensor::from_vector<float>({-0.25f}, {1}), h, 2);
  EXPECT_NEAR(s.p.item(), 0.8733662987078463, 1e-6);
}

TEST(Adam, L2AndDecoupledDecayDiffer) {
  // Zero gradient isolates the decay. AdamW: p = 1 - lr * wd * 1 = 0.99, and the Adam step is
  // 0 / (0 + eps) = 0. Adam with L2: g = wd * p = 0.1 so the first step moves by ~lr: 0.9.
  AdamHyper h;
  h.lr = 0.1;
  h.weight_decay = 0.1;
  const Tensor zero_grad = Tensor::from_vector<double>({0.0}, {1});
  h.decoupled = true;
  AdamState w = make_state(Tensor::from_vector<double>({1.0}, {1}));
  adam_step(w.p, w.m, w.v, zero_grad, h, 1);
  EXPECT_NEAR(w.p.item(), 0.99, 1e-15);
  EXPECT_EQ(w.m.item(), 0.0);
  h.decoupled = false;
  AdamState l2 = make_state(Tensor::from_vector<double>({1.0}, {1}));
  adam_step(l2.p, l2.m, l2.v, zero_grad, h, 1);
  EXPECT_NEAR(l2.m.item(), 0.01, 1e-15);  // the decay entered the moments
  EXPECT_NEAR(l2.p.item(), 1.0 - 0.1 * 0.1 / (0.1 + 1e-8), 1e-14);

  // With a real gradient: AdamW = 0.99 - 0.1 * ~1 = 0.89; L2: g = 0.6, p = 1 - ~0.1 = 0.9.
  const Tensor grad = Tensor::from_vector<double>({0.5}, {1});
  h.decoupled = true;
  AdamState w2 = make_state(Tensor::from_vector<double>({1.0}, {1}));
  adam_step(w2.p, w2.m, w2.v, grad, h, 1);
  EXPECT_NEAR(w2.p.item(), 0.99 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-14);
  h.decoupled = false;
  AdamState l22 = make_state(Tensor::from_vector<double>({1.0}, {1}));
  adam_step(l22.p, l22.m, l22.v, grad, h, 1);
  EXPECT_NEAR(l22.p.item(), 1.0 - 0.1 * 0.6 / (0.6 + 1e-8), 1e-14);
}

TEST(Adam, EmptyParamIsANoOp) {
  AdamState s = make_state(Tensor::zeros({0, 3}));
  EXPECT_NO_THROW(adam_step(s.p, s.m, s.v, Tensor::zeros({0, 3}), AdamHyper{}, 1));
}

TEST(Adam, WrongArgumentsThrowNamingTheProblem) {
  AdamState s = make_state(Tensor::zeros({2, 3}));
  try {
    adam_step(s.p, s.m, s.v, Tensor::zeros({3, 2}), AdamHyper{}, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("adam_step"), std::string::npos) << what;
    EXPECT_NE(what.find("grad"), std::string::npos) << what;
    EXPECT_NE(what.find("[3, 2]"), std::string::npos) << what;
  }
  Tensor bad_m = Tensor::zeros({2, 2});
  EXPECT_THROW(adam_step(s.p, bad_m, s.v, Tensor::zeros({2, 3}), AdamHyper{}, 1), Error);
  EXPECT_THROW(adam_step(s.p, s.m, s.v, Tensor::zeros({2, 3}, Dtype::F64), AdamHyper{}, 1),
               Error);
  try {
    adam_step(s.p, s.m, s.v, Tensor::zeros({2, 3}), AdamHyper{}, 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("step"), std::string::npos) << e.what();
  }
  Tensor ip = Tensor::zeros({2}, Dtype::I32);
  Tensor im = Tensor::zeros({2}, Dtype::I32);
  Tensor iv = Tensor::zeros({2}, Dtype::I32);
  EXPECT_THROW(adam_step(ip, im, iv, Tensor::zeros({2}, Dtype::I32), AdamHyper{}, 1), Error);
}

TEST(AdamCuda, MatchesCpuOverTenSteps) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (bool decoupled : {true, false}) {
      for (int64_t n : testing::odd_sizes()) {
        Generator g(100 + n);
        AdamHyper h;
        h.lr = 0.01;
        h.weight_decay = 0.05;
        h.decoupled = decoupled;
        AdamState cpu = make_state(Tensor::randn({n, 3}, g, dt));
        AdamState gpu = make_state(cpu.p.to(Device::cuda()));
        for (int64_t step = 1; step <= 10; ++step) {
          Tensor grad = Tensor::randn({n, 3}, g, dt);
          Tensor grad_d = grad.to(Device::cuda());
          adam_step(cpu.p, cpu.m, cpu.v, grad, h, step);
          adam_step(gpu.p, gpu.m, gpu.v, grad_d, h, step);
        }
        // f32: the same formula in the same order, but nvcc may contract to FMAs: atol 1e-5,
        // rtol 1e-4. f64: tight, 1e-12.
        const double tol = dt == Dtype::F32 ? 1e-5 : 1e-12;
        const double rtol = dt == Dtype::F32 ? 1e-4 : 1e-12;
        EXPECT_TRUE(testing::all_close(gpu.p, cpu.p, tol, rtol)) << "n=" << n;
        EXPECT_TRUE(testing::all_close(gpu.m, cpu.m, tol, rtol)) << "n=" << n;
        EXPECT_TRUE(testing::all_close(gpu.v, cpu.v, tol, rtol)) << "n=" << n;
      }
    }
  }
}

TEST(AdamCuda, EmptyAndMixedDevices) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  AdamState s = make_state(Tensor::zeros({0}, Dtype::F32, Device::cuda()));
  EXPECT_NO_THROW(adam_step(s.p, s.m, s.v, Tensor::zeros({0}, Dtype::F32, Device::cuda()),
                            AdamHyper{}, 1));
  AdamState d = make_state(Tensor::zeros({4}, Dtype::F32, Device::cuda()));
  EXPECT_THROW(adam_step(d.p, d.m, d.v, Tensor::zeros({4}), AdamHyper{}, 1), Error);
}

// ---- multi-tensor Adam and zero ----

// Sizes that cross the kernel's chunk (4096) and block (256) boundaries, and the empty tensor.
const std::vector<int64_t>& multi_sizes() {
  static const std::vector<int64_t> sizes = {0, 1, 7, 31, 32, 33, 257, 5000, 100003};
  return sizes;
}

// One Adam problem over several tensors, updated either through adam_step_multi or through
// adam_step one tensor at a time (the reference).
struct MultiProblem {
  std::vector<AdamState> states;
  std::vector<Tensor> grads;

  std::vector<AdamTensors> entries() {
    std::vector<AdamTensors> out;
    for (size_t i = 0; i < states.size(); ++i)
      out.push_back({&states[i].p, &states[i].m, &states[i].v, &grads[i]});
    return out;
  }
  void step_per_tensor(const AdamHyper& h, int64_t step) {
    for (size_t i = 0; i < states.size(); ++i)
      adam_step(states[i].p, states[i].m, states[i].v, grads[i], h, step);
  }
  MultiProblem clone() const {
    MultiProblem c;
    for (const AdamState& s : states) c.states.push_back({s.p.clone(), s.m.clone(), s.v.clone()});
    for (const Tensor& g : grads) c.grads.push_back(g.clone());
    return c;
  }
};

// Tensor i has multi_sizes()[i % 9] elements and dtype dtypes[i % dtypes.size()].
MultiProblem make_problem(Generator& gen, const std::vector<Dtype>& dtypes, Device device) {
  MultiProblem pr;
  const std::vector<int64_t>& sizes = multi_sizes();
  for (size_t i = 0; i < sizes.size(); ++i) {
    const Dtype dt = dtypes[i % dtypes.size()];
    pr.states.push_back(make_state(Tensor::randn({sizes[i]}, gen, dt, device)));
    pr.grads.push_back(Tensor::zeros({sizes[i]}, dt, device));
  }
  return pr;
}

void draw_grads(MultiProblem& a, MultiProblem& b, Generator& gen) {
  for (size_t i = 0; i < a.grads.size(); ++i) {
    const Tensor g = Tensor::randn(a.grads[i].shape(), gen, a.grads[i].dtype());
    a.grads[i].copy_from(g);
    b.grads[i].copy_from(g);
  }
}

::testing::AssertionResult problems_bitwise_equal(const MultiProblem& a, const MultiProblem& b) {
  for (size_t i = 0; i < a.states.size(); ++i) {
    for (auto [x, y, what] : {std::make_tuple(&a.states[i].p, &b.states[i].p, "param"),
                              std::make_tuple(&a.states[i].m, &b.states[i].m, "m"),
                              std::make_tuple(&a.states[i].v, &b.states[i].v, "v")}) {
      const ::testing::AssertionResult r = testing::bitwise_equal(*x, *y);
      if (!r) return ::testing::AssertionFailure() << what << "[" << i << "]: " << r.message();
    }
  }
  return ::testing::AssertionSuccess();
}

AdamHyper multi_hyper(bool decoupled) {
  AdamHyper h;
  h.lr = 0.01;
  h.weight_decay = 0.05;
  h.decoupled = decoupled;
  return h;
}

// Runs `steps` steps of both paths on the same gradients and compares bitwise after each.
void expect_multi_matches_per_tensor(const std::vector<Dtype>& dtypes, Device device,
                                     bool decoupled, int64_t steps, MultiTensorPlan* plan) {
  Generator gen(7 + (decoupled ? 1 : 0) + 10 * static_cast<uint64_t>(dtypes.size()));
  MultiProblem multi = make_problem(gen, dtypes, device);
  MultiProblem ref = multi.clone();
  const AdamHyper h = multi_hyper(decoupled);
  for (int64_t step = 1; step <= steps; ++step) {
    draw_grads(multi, ref, gen);
    adam_step_multi(multi.entries(), h, step, plan);
    ref.step_per_tensor(h, step);
    ASSERT_TRUE(problems_bitwise_equal(multi, ref))
        << "step " << step << ", decoupled " << decoupled << ", " << dtypes.size() << " dtypes";
  }
}

TEST(AdamMulti, CpuMatchesPerTensorBitwise) {
  for (bool decoupled : {true, false}) {
    for (const std::vector<Dtype>& dts :
         {std::vector<Dtype>{Dtype::F32}, {Dtype::F64}, {Dtype::F32, Dtype::F64}}) {
      MultiTensorPlan plan;
      expect_multi_matches_per_tensor(dts, Device::cpu(), decoupled, 3, &plan);
      EXPECT_EQ(plan.uploads(), 0);  // CPU tensors need no device table
      EXPECT_EQ(plan.num_tables(), 0);
    }
  }
}

TEST(AdamMulti, EmptyListIsANoOp) {
  MultiTensorPlan plan;
  EXPECT_NO_THROW(adam_step_multi({}, AdamHyper{}, 1, &plan));
  EXPECT_NO_THROW(adam_step_multi({}, AdamHyper{}, 1));
  EXPECT_NO_THROW(zero_multi({}, &plan));
  EXPECT_EQ(plan.uploads(), 0);
}

TEST(AdamMulti, ErrorsNameTheEntryAndUpdateNothing) {
  Generator gen(5);
  MultiProblem pr = make_problem(gen, {Dtype::F32}, Device::cpu());
  const Tensor p0 = pr.states[0].p.clone();
  pr.grads[2] = Tensor::zeros({3, 2});
  testing::expect_error_mentions([&] { adam_step_multi(pr.entries(), AdamHyper{}, 1); },
                                 {"adam_step_multi", "grad[2]", "[3, 2]"});
  // The check runs before any update: entry 0 (valid) is untouched.
  EXPECT_TRUE(testing::bitwise_equal(pr.states[0].p, p0));

  pr.grads[2] = Tensor::zeros({pr.states[2].p.numel()}, Dtype::F64);
  testing::expect_error_mentions([&] { adam_step_multi(pr.entries(), AdamHyper{}, 1); },
                                 {"adam_step_multi", "grad[2]", "f32"});
  pr.grads[2] = Tensor::zeros({pr.states[2].p.numel()});
  pr.states[4].m = Tensor::zeros({1});
  testing::expect_error_mentions([&] { adam_step_multi(pr.entries(), AdamHyper{}, 1); },
                                 {"adam_step_multi", "m[4]"});
  pr.states[4].m = Tensor::zeros(pr.states[4].p.shape());
  testing::expect_error_mentions([&] { adam_step_multi(pr.entries(), AdamHyper{}, 0); },
                                 {"adam_step_multi", "step"});
  AdamHyper bad;
  bad.beta2 = 1.0;
  testing::expect_error_mentions([&] { adam_step_multi(pr.entries(), bad, 1); }, {"beta2"});
  std::vector<AdamTensors> with_null = pr.entries();
  with_null[1].v = nullptr;
  testing::expect_error_mentions([&] { adam_step_multi(with_null, AdamHyper{}, 1); },
                                 {"adam_step_multi", "entry 1", "null"});
  Tensor ip = Tensor::zeros({2}, Dtype::I32), im = ip.clone(), iv = ip.clone(), ig = ip.clone();
  testing::expect_error_mentions(
      [&] { adam_step_multi({{&ip, &im, &iv, &ig}}, AdamHyper{}, 1); }, {"param[0]", "f32 or f64"});
  EXPECT_TRUE(testing::bitwise_equal(pr.states[0].p, p0));

  Tensor undefined;
  testing::expect_error_mentions([&] { zero_multi({&pr.grads[0], &undefined}); },
                                 {"zero_multi", "tensors[1]", "undefined"});
  testing::expect_error_mentions([&] { zero_multi({nullptr}); }, {"zero_multi", "null"});
}

TEST(ZeroMulti, ClearsCpuTensorsOfEveryDtype) {
  Generator gen(9);
  std::vector<Tensor> ts = {Tensor::randn({257}, gen, Dtype::F32),
                            Tensor::randn({3, 5}, gen, Dtype::F64),
                            Tensor::randint({31}, gen, 1, 100, Dtype::I32),
                            Tensor::randint({7}, gen, 1, 100, Dtype::I64), Tensor::zeros({0})};
  std::vector<Tensor*> ptrs;
  for (Tensor& t : ts) ptrs.push_back(&t);
  zero_multi(ptrs);
  for (const Tensor& t : ts) {
    EXPECT_TRUE(testing::bitwise_equal(t, Tensor::zeros(t.shape(), t.dtype()))) << t.describe();
  }
}

TEST(AdamMultiCuda, MatchesPerTensorBitwiseAndUploadsOnce) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (bool decoupled : {true, false}) {
    for (const std::vector<Dtype>& dts :
         {std::vector<Dtype>{Dtype::F32}, {Dtype::F64}, {Dtype::F32, Dtype::F64}}) {
      MultiTensorPlan plan;
      expect_multi_matches_per_tensor(dts, Device::cuda(), decoupled, 5, &plan);
      // One table per dtype, uploaded on the first step only: steady-state steps upload nothing.
      EXPECT_EQ(plan.num_tables(), static_cast<int64_t>(dts.size()));
      EXPECT_EQ(plan.uploads(), static_cast<int64_t>(dts.size()));
    }
    // Without a plan: a temporary table per call, same results.
    expect_multi_matches_per_tensor({Dtype::F32}, Device::cuda(), decoupled, 2, nullptr);
  }
}

TEST(AdamMultiCuda, ReuploadsWhenATensorIsReplacedOrResized) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Generator gen(11);
  MultiProblem multi = make_problem(gen, {Dtype::F32}, Device::cuda());
  MultiProblem ref = multi.clone();
  const AdamHyper h = multi_hyper(true);
  MultiTensorPlan plan;
  int64_t step = 1;
  auto run_step = [&] {
    draw_grads(multi, ref, gen);
    adam_step_multi(multi.entries(), h, step, &plan);
    ref.step_per_tensor(h, step);
    ++step;
    return problems_bitwise_equal(multi, ref);
  };
  ASSERT_TRUE(run_step());
  ASSERT_TRUE(run_step());
  EXPECT_EQ(plan.uploads(), 1);

  // Replace param 7 (5000 elements) by a copy; the old tensor stays alive, so the copy has a
  // different address. A stale table would update the old tensor instead of the new one.
  const Tensor old_p = multi.states[7].p;
  const Tensor old_values = old_p.clone();
  multi.states[7].p = old_p.clone();
  ASSERT_TRUE(run_step());
  EXPECT_EQ(plan.uploads(), 2);
  EXPECT_TRUE(testing::bitwise_equal(old_p, old_values)) << "the replaced tensor was written";
  ASSERT_TRUE(run_step());
  EXPECT_EQ(plan.uploads(), 2);

  // Replace a moment and a grad, and resize one parameter (1 -> 6000 elements, more chunks).
  multi.states[3].v = multi.states[3].v.clone();
  multi.grads[5] = multi.grads[5].clone();
  Tensor big = Tensor::randn({6000}, gen, Dtype::F32);
  multi.states[1] = make_state(big.to(Device::cuda()));
  multi.grads[1] = Tensor::zeros({6000}, Dtype::F32, Device::cuda());
  ref.states[1] = make_state(big.to(Device::cuda()));
  ref.grads[1] = Tensor::zeros({6000}, Dtype::F32, Device::cuda());
  ASSERT_TRUE(run_step());
  EXPECT_EQ(plan.uploads(), 3);

  // Move tensor 6 (257 elements) to the CPU, in both problems: the CUDA group changes (a new
  // upload), and the CPU entry takes the per-tensor CPU path within the same call.
  for (MultiProblem* pr : {&multi, &ref}) {
    AdamState& s = pr->states[6];
    s = {s.p.to(Device::cpu()), s.m.to(Device::cpu()), s.v.to(Device::cpu())};
    pr->grads[6] = pr->grads[6].to(Device::cpu());
  }
  ASSERT_TRUE(run_step());
  EXPECT_EQ(plan.uploads(), 4);
  EXPECT_TRUE(multi.states[6].p.device().is_cpu());

  // Everything on the CPU: the plan frees its table.
  for (AdamState& s : multi.states) {
    s = {s.p.to(Device::cpu()), s.m.to(Device::cpu()), s.v.to(Device::cpu())};
  }
  for (Tensor& g : multi.grads) g = g.to(Device::cpu());
  adam_step_multi(multi.entries(), h, step, &plan);
  EXPECT_EQ(plan.num_tables(), 0);
  EXPECT_EQ(plan.uploads(), 4);
}

TEST(AdamMultiCuda, SharedBuffersAreRejected) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device cuda = Device::cuda();
  AdamState a = make_state(Tensor::zeros({40}, Dtype::F32, cuda));
  AdamState b = make_state(Tensor::zeros({40}, Dtype::F32, cuda));
  Tensor ga = Tensor::zeros({40}, Dtype::F32, cuda), gb = ga.clone();
  MultiTensorPlan plan;
  // The same parameter twice: two blocks would update it at once.
  testing::expect_error_mentions(
      [&] { adam_step_multi({{&a.p, &a.m, &a.v, &ga}, {&a.p, &b.m, &b.v, &gb}}, {}, 1, &plan); },
      {"adam_step_multi", "param[0]", "param[1]", "share memory"});
  // A grad that is another entry's moment.
  testing::expect_error_mentions(
      [&] { adam_step_multi({{&a.p, &a.m, &a.v, &ga}, {&b.p, &b.m, &b.v, &a.m}}, {}, 1, &plan); },
      {"adam_step_multi", "grad[1]", "m[0]"});
  // Rejected tables are not kept: asking again fails again.
  EXPECT_THROW(
      adam_step_multi({{&a.p, &a.m, &a.v, &ga}, {&a.p, &b.m, &b.v, &gb}}, {}, 1, &plan), Error);
  EXPECT_TRUE(testing::bitwise_equal(a.p, Tensor::zeros({40}, Dtype::F32, cuda)));
  // Mixed devices within an entry.
  Tensor cpu_grad = Tensor::zeros({40});
  testing::expect_error_mentions(
      [&] { adam_step_multi({{&a.p, &a.m, &a.v, &cpu_grad}}, {}, 1, &plan); },
      {"adam_step_multi", "grad[0]", "cpu"});
}

TEST(ZeroMultiCuda, ClearsEveryDtypeInOneTableAndNothingElse) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device cuda = Device::cuda();
  Generator gen(13);
  std::vector<Tensor> ts;
  const std::vector<Dtype> dts = {Dtype::F32, Dtype::F64, Dtype::I32, Dtype::I64};
  for (size_t i = 0; i < multi_sizes().size(); ++i) {
    const Dtype dt = dts[i % dts.size()];
    const int64_t n = multi_sizes()[i];
    ts.push_back(is_floating(dt) ? Tensor::randn({n}, gen, dt, cuda)
                                 : Tensor::randint({n}, gen, 1, 1000, dt, cuda));
  }
  ts.push_back(Tensor::randn({33}, gen, Dtype::F32));  // a CPU tensor in the same call
  // Not in the list: must keep its values (no chunk may run past its tensor's end).
  const Tensor bystander = Tensor::randn({4099}, gen, Dtype::F32, cuda);
  const Tensor bystander_values = bystander.clone();
  std::vector<Tensor*> ptrs;
  for (Tensor& t : ts) ptrs.push_back(&t);
  MultiTensorPlan plan;
  zero_multi(ptrs, &plan);
  for (const Tensor& t : ts) {
    EXPECT_TRUE(testing::bitwise_equal(t, Tensor::zeros(t.shape(), t.dtype(), t.device())))
        << t.describe();
  }
  EXPECT_TRUE(testing::bitwise_equal(bystander, bystander_values));
  EXPECT_EQ(plan.num_tables(), 1);  // every dtype of the device in one launch
  EXPECT_EQ(plan.uploads(), 1);
  for (Tensor& t : ts) t.fill(3.0);
  zero_multi(ptrs, &plan);
  EXPECT_EQ(plan.uploads(), 1);  // same tensors: no upload
  for (const Tensor& t : ts) {
    EXPECT_TRUE(testing::bitwise_equal(t, Tensor::zeros(t.shape(), t.dtype(), t.device())))
        << t.describe();
  }
  Tensor old = ts[8];
  ts[8] = Tensor::full({100003}, 2.0, Dtype::F32, cuda);  // replaced while the old one lives
  old.fill(5.0);
  zero_multi(ptrs, &plan);
  EXPECT_EQ(plan.uploads(), 2);
  EXPECT_TRUE(testing::bitwise_equal(ts[8], Tensor::zeros({100003}, Dtype::F32, cuda)));
  EXPECT_TRUE(testing::bitwise_equal(old, Tensor::full({100003}, 5.0, Dtype::F32, cuda)));
}

}  // namespace
}  // namespace lapis
