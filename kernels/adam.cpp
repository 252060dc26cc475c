#include "kernels/adam.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "core/cuda_api.h"
#include "kernels/cpu/adam_cpu.h"
#include "kernels/cuda/adam_cuda.h"

namespace lapis {

namespace {

void check_hyper(const char* op, const AdamHyper& hyper, int64_t step) {
  LAPIS_CHECK(step >= 1, op, "step counts from 1, got ", step);
  LAPIS_CHECK(hyper.beta1 >= 0.0 && hyper.beta1 < 1.0, op, "beta1 must be in [0, 1), got ",
              hyper.beta1);
  LAPIS_CHECK(hyper.beta2 >= 0.0 && hyper.beta2 < 1.0, op, "beta2 must be in [0, 1), got ",
              hyper.beta2);
  LAPIS_CHECK(hyper.lr >= 0.0, op, "lr must be >= 0, got ", hyper.lr);
  LAPIS_CHECK(hyper.eps >= 0.0, op, "eps must be >= 0, got ", hyper.eps);
  LAPIS_CHECK(hyper.weight_decay >= 0.0, op, "weight_decay must be >= 0, got ",
              hyper.weight_decay);
}

// The argument checks of adam_step; names are "param", "m", ... or "param[3]", ... for entry 3
// of adam_step_multi.
void check_adam_tensors(const char* op, const std::string& suffix, const Tensor& param,
                        const Tensor& m, const Tensor& v, const Tensor& grad) {
  const std::string p_name = "param" + suffix, m_name = "m" + suffix, v_name = "v" + suffix,
                    g_name = "grad" + suffix;
  check_floating(op, p_name.c_str(), param);
  check_shape(op, m_name.c_str(), m, param.shape());
  check_shape(op, v_name.c_str(), v, param.shape());
  check_shape(op, g_name.c_str(), grad, param.shape());
  check_dtype(op, m_name.c_str(), m, param.dtype());
  check_dtype(op, v_name.c_str(), v, param.dtype());
  check_dtype(op, g_name.c_str(), grad, param.dtype());
  check_same_device(op, p_name.c_str(), param, m_name.c_str(), m);
  check_same_device(op, p_name.c_str(), param, v_name.c_str(), v);
  check_same_device(op, p_name.c_str(), param, g_name.c_str(), grad);
}

// True when check_adam_tensors would pass: the per-step fast path (no strings built).
bool adam_tensors_ok(const Tensor& p, const Tensor& m, const Tensor& v, const Tensor& g) {
  if (!p.defined() || !m.defined() || !v.defined() || !g.defined()) return false;
  if (!is_floating(p.dtype())) return false;
  for (const Tensor* t : {&m, &v, &g}) {
    if (t->shape() != p.shape() || t->dtype() != p.dtype() || t->device() != p.device()) {
      return false;
    }
  }
  return true;
}

bool same_entries(const std::vector<cuda::MultiTensorEntry>& a,
                  const std::vector<cuda::MultiTensorEntry>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].numel != b[i].numel) return false;
    for (int k = 0; k < 4; ++k) {
      if (a[i].ptr[k] != b[i].ptr[k]) return false;
    }
  }
  return true;
}

enum class PlanKind { Adam, Zero };

// The tensors of one launch: one device and, for Adam, one dtype.
struct LaunchGroup {
  Device device;
  Dtype dtype;
  std::vector<cuda::MultiTensorEntry> entries;
  std::vector<size_t> index;  // entry -> position in the caller's list (for error messages)
};

LaunchGroup& group_for(std::vector<LaunchGroup>& groups, Device device, Dtype dtype) {
  for (LaunchGroup& g : groups) {
    if (g.device == device && g.dtype == dtype) return g;
  }
  groups.push_back(LaunchGroup{device, dtype, {}, {}});
  return groups.back();
}

}  // namespace

// ---- MultiTensorPlan ----

struct MultiTensorPlan::Impl {
  struct Table {
    PlanKind kind;
    Device device;
    Dtype dtype;
    std::vector<cuda::MultiTensorEntry> entries;  // what the device copy holds (the cache key)
    void* memory = nullptr;  // device: entries, then chunks
    int64_t num_chunks = 0;
    bool used = false;  // by the current call

    const cuda::MultiTensorEntry* device_entries() const {
      return static_cast<const cuda::MultiTensorEntry*>(memory);
    }
    const cuda::MultiTensorChunk* device_chunks() const {
      return reinterpret_cast<const cuda::MultiTensorChunk*>(
          static_cast<const char*>(memory) + entries.size() * sizeof(cuda::MultiTensorEntry));
    }
  };
  std::vector<Table> tables;
  int64_t uploads = 0;

  ~Impl() { release(); }

  void release() noexcept {
    for (Table& t : tables) cuda::device_free(t.memory);
    tables.clear();
  }

  void begin(PlanKind kind) {
    for (Table& t : tables) {
      if (t.kind == kind) t.used = false;
    }
  }

  // Frees the tables of `kind` that the current call did not use (their tensors left the device
  // or changed dtype), so that the plan does not hold device memory for nothing.
  void end(PlanKind kind) noexcept {
    auto unused = [&](const Table& t) { return t.kind == kind && !t.used; };
    for (Table& t : tables) {
      if (unused(t)) cuda::device_free(t.memory);
    }
    tables.erase(std::remove_if(tables.begin(), tables.end(), unused), tables.end());
  }

  Table* find(PlanKind kind, Device device, Dtype dtype) {
    for (Table& t : tables) {
      if (t.kind == kind && t.device == device && t.dtype == dtype) return &t;
    }
    return nullptr;
  }

  // Makes the table of (kind, device, dtype) hold `entries`: the cached one stays when its
  // pointers and sizes are the same (no upload, no synchronisation); otherwise validate(entries)
  // runs (it may throw, leaving the plan as it was) and a new table is uploaded.
  template <typename Validate>
  void prepare(PlanKind kind, Device device, Dtype dtype,
               const std::vector<cuda::MultiTensorEntry>& entries, Validate&& validate) {
    Table* table = find(kind, device, dtype);
    if (table == nullptr) {
      tables.push_back(Table{kind, device, dtype, {}, nullptr, 0, false});
      table = &tables.back();
    }
    table->used = true;
    if (table->memory != nullptr && same_entries(table->entries, entries)) return;
    validate();

    // Chunks of kMultiTensorChunk elements, in entry order.
    std::vector<cuda::MultiTensorChunk> chunks;
    for (size_t i = 0; i < entries.size(); ++i) {
      for (int64_t start = 0; start < entries[i].numel; start += cuda::kMultiTensorChunk) {
        chunks.push_back({static_cast<int64_t>(i), start});
      }
    }
    const size_t entry_bytes = entries.size() * sizeof(cuda::MultiTensorEntry);
    const size_t nbytes = entry_bytes + chunks.size() * sizeof(cuda::MultiTensorChunk);
    std::vector<char> host(nbytes);
    std::memcpy(host.data(), entries.data(), entry_bytes);
    std::memcpy(host.data() + entry_bytes, chunks.data(), nbytes - entry_bytes);
    void* memory = cuda::device_alloc(nbytes);
    try {
      // Stream-ordered after every earlier launch, so a table still read by a queued kernel is
      // never overwritten; the host buffer may be freed on return.
      cuda::copy_host_to_device(memory, host.data(), nbytes);
    } catch (...) {
      cuda::device_free(memory);
      throw;
    }
    cuda::device_free(table->memory);  // stream order protects a queued reader of the old one
    table->memory = memory;
    table->entries = entries;
    table->num_chunks = static_cast<int64_t>(chunks.size());
    ++uploads;
  }
};

MultiTensorPlan::MultiTensorPlan() = default;
MultiTensorPlan::~MultiTensorPlan() = default;
MultiTensorPlan::MultiTensorPlan(MultiTensorPlan&& other) noexcept = default;
MultiTensorPlan& MultiTensorPlan::operator=(MultiTensorPlan&& other) noexcept = default;

int64_t MultiTensorPlan::uploads() const { return impl_ ? impl_->uploads : 0; }

int64_t MultiTensorPlan::num_tables() const {
  return impl_ ? static_cast<int64_t>(impl_->tables.size()) : 0;
}

void MultiTensorPlan::release() noexcept {
  if (impl_) impl_->release();
}

// ---- Adam ----

void adam_step(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamHyper& hyper,
               int64_t step) {
  const char* op = "adam_step";
  check_adam_tensors(op, "", param, m, v, grad);
  check_hyper(op, hyper, step);
  if (param.numel() == 0) return;
  switch (param.device().type) {
    case DeviceType::CPU: cpu::adam_step(param, m, v, grad, hyper, step); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::adam_step, param, m, v, grad, hyper, step); break;
  }
}

namespace {

// The multi-tensor kernel updates all chunks at once, so no buffer it writes (param, m, v) may
// be another entry's buffer or any grad. Checked when a table is built (sorting the pointers),
// not on steady-state steps.
void check_no_aliasing(const char* op, const LaunchGroup& g) {
  std::vector<std::pair<const void*, size_t>> written;  // (buffer, entry) of param, m, v
  for (size_t i = 0; i < g.entries.size(); ++i) {
    for (int k : {0, 2, 3}) written.emplace_back(g.entries[i].ptr[k], i);
  }
  std::sort(written.begin(), written.end());
  static const char* kNames[] = {"param", "grad", "m", "v"};
  auto name_of = [&](size_t entry, const void* ptr) {
    for (int k = 0; k < 4; ++k) {
      if (g.entries[entry].ptr[k] == ptr) return str_cat(kNames[k], "[", g.index[entry], "]");
    }
    return str_cat("tensor ", g.index[entry]);
  };
  for (size_t j = 1; j < written.size(); ++j) {
    LAPIS_CHECK(written[j].first != written[j - 1].first, op,
                name_of(written[j - 1].second, written[j].first), " and ",
                name_of(written[j].second, written[j].first),
                " share memory: the multi-tensor update would write it twice at once");
  }
  for (size_t i = 0; i < g.entries.size(); ++i) {
    const void* grad = g.entries[i].ptr[1];
    auto it = std::lower_bound(written.begin(), written.end(),
                               std::pair<const void*, size_t>(grad, 0));
    LAPIS_CHECK(it == written.end() || it->first != grad, op, "grad[", g.index[i],
                "] shares memory with ", name_of(it == written.end() ? 0 : it->second, grad),
                ", which the multi-tensor update writes");
  }
}

}  // namespace

void adam_step_multi(const std::vector<AdamTensors>& tensors, const AdamHyper& hyper, int64_t step,
                     MultiTensorPlan* plan) {
  const char* op = "adam_step_multi";
  check_hyper(op, hyper, step);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const AdamTensors& t = tensors[i];
    LAPIS_CHECK(t.param && t.m && t.v && t.grad, op, "entry ", i, " has a null tensor pointer");
    if (!adam_tensors_ok(*t.param, *t.m, *t.v, *t.grad)) {
      check_adam_tensors(op, str_cat("[", i, "]"), *t.param, *t.m, *t.v, *t.grad);
    }
  }

  // CUDA entries by (device, dtype); CPU entries one by one (already checked).
  std::vector<LaunchGroup> groups;
  std::vector<const AdamTensors*> cpu_entries;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const AdamTensors& t = tensors[i];
    if (t.param->numel() == 0) continue;
    if (t.param->device().is_cpu()) {
      cpu_entries.push_back(&t);
      continue;
    }
    LaunchGroup& g = group_for(groups, t.param->device(), t.param->dtype());
    g.entries.push_back({{t.param->raw_data(), t.grad->raw_data(), t.m->raw_data(),
                          t.v->raw_data()},
                         t.param->numel()});
    g.index.push_back(i);
  }
  if (groups.empty() && (plan == nullptr || !plan->impl_)) {
    for (const AdamTensors* t : cpu_entries) {
      cpu::adam_step(*t->param, *t->m, *t->v, *t->grad, hyper, step);
    }
    return;
  }

  MultiTensorPlan local;
  if (plan == nullptr) plan = &local;
  if (!plan->impl_) plan->impl_ = std::make_unique<MultiTensorPlan::Impl>();
  MultiTensorPlan::Impl& impl = *plan->impl_;
  impl.begin(PlanKind::Adam);
  // Every table first (a new one is checked before its upload), then the launches, then the CPU
  // entries: an error leaves every tensor as it was.
  for (const LaunchGroup& g : groups) {
    impl.prepare(PlanKind::Adam, g.device, g.dtype, g.entries,
                 [&] { check_no_aliasing(op, g); });
  }
  for (const LaunchGroup& g : groups) {
    [[maybe_unused]] const MultiTensorPlan::Impl::Table& table =  // (CPU-only build: unused)
        *impl.find(PlanKind::Adam, g.device, g.dtype);
    LAPIS_CUDA_CALL(cuda::adam_step_multi, table.device_entries(), table.device_chunks(),
                    table.num_chunks, g.dtype, hyper, step);
  }
  impl.end(PlanKind::Adam);
  for (const AdamTensors* t : cpu_entries) {
    cpu::adam_step(*t->param, *t->m, *t->v, *t->grad, hyper, step);
  }
}

// ---- zero ----

void zero_multi(const std::vector<Tensor*>& tensors, MultiTensorPlan* plan) {
  const char* op = "zero_multi";
  for (size_t i = 0; i < tensors.size(); ++i) {
    LAPIS_CHECK(tensors[i] != nullptr, op, "tensor ", i, " is a null pointer");
    if (!tensors[i]->defined()) check_defined(op, str_cat("tensors[", i, "]").c_str(), *tensors[i]);
  }
  // One launch per device: the kernel clears 4-byte words, which every dtype's size divides
  // (storage is at least 256-byte aligned), so dtypes need no groups of their own.
  std::vector<LaunchGroup> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    Tensor& t = *tensors[i];
    if (t.numel() == 0) continue;
    if (t.device().is_cpu()) {
      t.zero();
      continue;
    }
    LaunchGroup& g = group_for(groups, t.device(), Dtype::I32);
    g.entries.push_back(
        {{t.raw_data(), nullptr, nullptr, nullptr}, static_cast<int64_t>(t.nbytes() / 4)});
    g.index.push_back(i);
  }
  if (groups.empty() && (plan == nullptr || !plan->impl_)) return;

  MultiTensorPlan local;
  if (plan == nullptr) plan = &local;
  if (!plan->impl_) plan->impl_ = std::make_unique<MultiTensorPlan::Impl>();
  MultiTensorPlan::Impl& impl = *plan->impl_;
  impl.begin(PlanKind::Zero);
  // Zeroing a buffer twice is harmless, so shared storage needs no check; the kernel's 4-byte
  // stores need 4-byte aligned buffers (device storage is 256-byte aligned).
  for (const LaunchGroup& g : groups) {
    impl.prepare(PlanKind::Zero, g.device, g.dtype, g.entries, [&] {
      for (size_t i = 0; i < g.entries.size(); ++i) {
        LAPIS_CHECK(reinterpret_cast<uintptr_t>(g.entries[i].ptr[0]) % 4 == 0, op, "tensors[",
                    g.index[i], "] is not 4-byte aligned (", tensors[g.index[i]]->describe(),
                    ")");
      }
    });
  }
  for (const LaunchGroup& g : groups) {
    [[maybe_unused]] const MultiTensorPlan::Impl::Table& table =  // (CPU-only build: unused)
        *impl.find(PlanKind::Zero, g.device, g.dtype);
    LAPIS_CUDA_CALL(cuda::zero_multi, table.device_entries(), table.device_chunks(),
                    table.num_chunks);
  }
  impl.end(PlanKind::Zero);
}

}  // namespace lapis
