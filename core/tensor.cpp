#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/cuda_api.h"

namespace lapis {

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t e : shape) {
    LAPIS_CHECK(e >= 0, "Tensor", "negative extent ", e, " in shape ", shape_to_string(shape));
    LAPIS_CHECK(e == 0 || n <= std::numeric_limits<int64_t>::max() / e, "Tensor",
                "shape ", shape_to_string(shape), " has too many elements");
    n *= e;
  }
  return n;
}

// ---------------------------------------------------------------- Storage

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (nbytes == 0) return;
  if (device.is_cpu()) {
    // 64-byte alignment keeps Eigen's and the compiler's vector loads aligned.
    const size_t rounded = (nbytes + 63) / 64 * 64;
    data_ = std::aligned_alloc(64, rounded);
    LAPIS_CHECK(data_ != nullptr, "Storage", "out of host memory allocating ", nbytes, " bytes");
  } else {
    LAPIS_CHECK(device.index == 0, "Storage", "only cuda:0 is supported, got ",
                device.to_string());
    data_ = cuda::device_alloc(nbytes);
  }
}

Storage::~Storage() {
  if (!data_) return;
  if (device_.is_cpu()) {
    std::free(data_);
  } else {
    cuda::device_free(data_);
  }
}

// ---------------------------------------------------------------- Tensor

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Dtype dtype, size_t offset_bytes)
    : storage_(std::move(storage)), offset_bytes_(offset_bytes), shape_(std::move(shape)),
      dtype_(dtype) {
  numel_ = shape_numel(shape_);
  device_ = storage_->device();
}

Tensor Tensor::empty(const Shape& shape, Dtype dtype, Device device) {
  const int64_t n = shape_numel(shape);
  auto storage = std::make_shared<Storage>(static_cast<size_t>(n) * dtype_size(dtype), device);
  return Tensor(std::move(storage), shape, dtype);
}

Tensor Tensor::zeros(const Shape& shape, Dtype dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, Dtype dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill(value);
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  const int64_t n = shape_numel(shape);
  LAPIS_CHECK(static_cast<int64_t>(values.size()) == n, "Tensor::from_vector", "got ",
              values.size(), " values for shape ", shape_to_string(shape), " (", n,
              " elements)");
  Tensor host = empty(shape, dtype_of<T>(), Device::cpu());
  if (n) std::memcpy(host.raw_data(), values.data(), host.nbytes());
  return host.to(device);
}

namespace {
template <typename T, typename F>
Tensor generate_on_host(const Shape& shape, Dtype dtype, Device device, F&& value_at) {
  Tensor host = Tensor::empty(shape, dtype, Device::cpu());
  T* p = host.data<T>();
  for (int64_t i = 0; i < host.numel(); ++i) p[i] = static_cast<T>(value_at(i));
  return host.to(device);
}
}  // namespace

// Random tensors are generated on the host and copied: initialisation is not a hot path, and
// this makes the values independent of the device by construction.
Tensor Tensor::randn(const Shape& shape, Generator& gen, Dtype dtype, Device device, double mean,
                     double stddev) {
  const uint64_t seed = gen.seed();
  const uint64_t first = gen.advance(static_cast<uint64_t>(shape_numel(shape)));
  return LAPIS_DISPATCH_FLOAT(dtype, "Tensor::randn", [&] {
    return generate_on_host<scalar_t>(shape, dtype, device, [&](int64_t i) {
      return mean + stddev * normal01(seed, first + static_cast<uint64_t>(i));
    });
  });
}

Tensor Tensor::rand_uniform(const Shape& shape, Generator& gen, double low, double high,
                            Dtype dtype, Device device) {
  LAPIS_CHECK(low <= high, "Tensor::rand_uniform", "low ", low, " > high ", high);
  const uint64_t seed = gen.seed();
  const uint64_t first = gen.advance(static_cast<uint64_t>(shape_numel(shape)));
  return LAPIS_DISPATCH_FLOAT(dtype, "Tensor::rand_uniform", [&] {
    return generate_on_host<scalar_t>(shape, dtype, device, [&](int64_t i) {
      return low + (high - low) * static_cast<double>(
                                      uniform01(seed, first + static_cast<uint64_t>(i)));
    });
  });
}

Tensor Tensor::randint(const Shape& shape, Generator& gen, int64_t low, int64_t high,
                       Dtype dtype, Device device) {
  LAPIS_CHECK(low < high, "Tensor::randint", "empty range [", low, ", ", high, ")");
  const uint64_t seed = gen.seed();
  const uint64_t first = gen.advance(static_cast<uint64_t>(shape_numel(shape)));
  const uint64_t range = static_cast<uint64_t>(high - low);
  return LAPIS_DISPATCH_INDEX(dtype, "Tensor::randint", [&] {
    return generate_on_host<index_t>(shape, dtype, device, [&](int64_t i) {
      return low + static_cast<int64_t>(random_bits(seed, first + static_cast<uint64_t>(i)) %
                                        range);
    });
  });
}

int64_t Tensor::size(int64_t axis) const {
  const int64_t d = dim();
  const int64_t a = axis < 0 ? axis + d : axis;
  LAPIS_CHECK(a >= 0 && a < d, "Tensor::size", "axis ", axis, " out of range for ", describe());
  return shape_[static_cast<size_t>(a)];
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return str_cat(dtype_name(dtype_), " ", shape_to_string(shape_), " on ", device_.to_string());
}

template <typename T>
T* Tensor::data() const {
  LAPIS_CHECK(defined(), "Tensor::data", "tensor is undefined");
  LAPIS_CHECK(dtype_of<T>() == dtype_, "Tensor::data", "asked for ", dtype_name(dtype_of<T>()),
              " data of ", describe());
  return static_cast<T*>(raw_data());
}

void* Tensor::raw_data() const {
  LAPIS_CHECK(defined(), "Tensor::raw_data", "tensor is undefined");
  void* base = storage_->data();
  return base ? static_cast<char*>(base) + offset_bytes_ : nullptr;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  check_defined("Tensor::slice", "tensor", *this);
  LAPIS_CHECK(dim() >= 1, "Tensor::slice", "needs at least one axis, got ", describe());
  LAPIS_CHECK(0 <= begin && begin <= end && end <= shape_[0], "Tensor::slice", "rows [", begin,
              ", ", end, ") out of range for ", describe());
  Shape shape = shape_;
  shape[0] = end - begin;
  const int64_t row_numel = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  const size_t offset =
      offset_bytes_ + static_cast<size_t>(begin * row_numel) * dtype_size(dtype_);
  return Tensor(storage_, std::move(shape), dtype_, offset);
}

Tensor Tensor::to(Device device) const {
  check_defined("Tensor::to", "tensor", *this);
  if (device == device_) return *this;
  Tensor out = empty(shape_, dtype_, device);
  out.copy_from(*this);
  return out;
}

Tensor Tensor::to(Dtype dtype) const {
  check_defined("Tensor::to", "tensor", *this);
  if (dtype == dtype_) return clone();
  const Tensor host = to(Device::cpu());
  Tensor out = empty(shape_, dtype, Device::cpu());
  auto convert = [&](auto* src) {
    using Src = std::remove_pointer_t<decltype(src)>;
    switch (dtype) {
      case Dtype::F32: for (int64_t i = 0; i < numel_; ++i) out.data<float>()[i] = static_cast<float>(src[i]); break;
      case Dtype::F64: for (int64_t i = 0; i < numel_; ++i) out.data<double>()[i] = static_cast<double>(src[i]); break;
      case Dtype::I32: for (int64_t i = 0; i < numel_; ++i) out.data<int32_t>()[i] = static_cast<int32_t>(src[i]); break;
      case Dtype::I64: for (int64_t i = 0; i < numel_; ++i) out.data<int64_t>()[i] = static_cast<int64_t>(src[i]); break;
    }
    (void)sizeof(Src);
  };
  switch (dtype_) {
    case Dtype::F32: convert(host.data<float>()); break;
    case Dtype::F64: convert(host.data<double>()); break;
    case Dtype::I32: convert(host.data<int32_t>()); break;
    case Dtype::I64: convert(host.data<int64_t>()); break;
  }
  return out.to(device_);
}

Tensor Tensor::clone() const {
  check_defined("Tensor::clone", "tensor", *this);
  Tensor out = empty(shape_, dtype_, device_);
  out.copy_from(*this);
  return out;
}

Tensor Tensor::reshape(const Shape& shape) const {
  check_defined("Tensor::reshape", "tensor", *this);
  Shape resolved = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      LAPIS_CHECK(infer < 0, "Tensor::reshape", "more than one -1 in ", shape_to_string(shape));
      infer = static_cast<int>(i);
    } else {
      LAPIS_CHECK(resolved[i] >= 0, "Tensor::reshape", "negative extent in ",
                  shape_to_string(shape));
      known *= resolved[i];
    }
  }
  if (infer >= 0) {
    LAPIS_CHECK(known > 0 && numel_ % known == 0, "Tensor::reshape", "cannot infer -1 in ",
                shape_to_string(shape), " for ", describe());
    resolved[static_cast<size_t>(infer)] = numel_ / known;
  }
  LAPIS_CHECK(shape_numel(resolved) == numel_, "Tensor::reshape", "cannot reshape ", describe(),
              " to ", shape_to_string(shape));
  return Tensor(storage_, resolved, dtype_, offset_bytes_);
}

void Tensor::copy_from(const Tensor& src) {
  check_defined("Tensor::copy_from", "destination", *this);
  check_defined("Tensor::copy_from", "source", src);
  LAPIS_CHECK(src.dtype_ == dtype_ && src.numel_ == numel_, "Tensor::copy_from",
              "cannot copy ", src.describe(), " into ", describe());
  const size_t n = nbytes();
  if (n == 0) return;
  if (device_.is_cpu() && src.device_.is_cpu()) {
    if (raw_data() != src.raw_data()) std::memcpy(raw_data(), src.raw_data(), n);
  } else if (device_.is_cuda() && src.device_.is_cpu()) {
    cuda::copy_host_to_device(raw_data(), src.raw_data(), n);
  } else if (device_.is_cpu() && src.device_.is_cuda()) {
    cuda::copy_device_to_host(raw_data(), src.raw_data(), n);
  } else {
    cuda::copy_device_to_device(raw_data(), src.raw_data(), n);
  }
}

void Tensor::fill(double value) {
  check_defined("Tensor::fill", "tensor", *this);
  if (numel_ == 0) return;
  auto fill_host = [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    for (int64_t i = 0; i < numel_; ++i) p[i] = static_cast<T>(value);
  };
  if (device_.is_cpu()) {
    switch (dtype_) {
      case Dtype::F32: fill_host(data<float>()); break;
      case Dtype::F64: fill_host(data<double>()); break;
      case Dtype::I32: fill_host(data<int32_t>()); break;
      case Dtype::I64: fill_host(data<int64_t>()); break;
    }
    return;
  }
  uint64_t bits = 0;
  switch (dtype_) {
    case Dtype::F32: { float v = static_cast<float>(value); std::memcpy(&bits, &v, 4); break; }
    case Dtype::F64: { double v = value; std::memcpy(&bits, &v, 8); break; }
    case Dtype::I32: { int32_t v = static_cast<int32_t>(value); std::memcpy(&bits, &v, 4); break; }
    case Dtype::I64: { int64_t v = static_cast<int64_t>(value); std::memcpy(&bits, &v, 8); break; }
  }
  cuda::fill_bits(raw_data(), static_cast<size_t>(numel_), dtype_size(dtype_), bits);
}

void Tensor::zero() {
  check_defined("Tensor::zero", "tensor", *this);
  if (numel_ == 0) return;
  if (device_.is_cpu()) {
    std::memset(raw_data(), 0, nbytes());
  } else {
    cuda::memset_zero(raw_data(), nbytes());
  }
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = to(Device::cpu());
  const T* p = host.data<T>();
  return std::vector<T>(p, p + numel_);
}

double Tensor::item() const {
  LAPIS_CHECK(numel_ == 1, "Tensor::item", "expected one element, got ", describe());
  switch (dtype_) {
    case Dtype::F32: return to_vector<float>()[0];
    case Dtype::F64: return to_vector<double>()[0];
    case Dtype::I32: return to_vector<int32_t>()[0];
    case Dtype::I64: return static_cast<double>(to_vector<int64_t>()[0]);
  }
  return 0.0;
}

#define LAPIS_INSTANTIATE(T)                                                               \
  template Tensor Tensor::from_vector<T>(const std::vector<T>&, const Shape&, Device);     \
  template T* Tensor::data<T>() const;                                                     \
  template std::vector<T> Tensor::to_vector<T>() const;
LAPIS_INSTANTIATE(float)
LAPIS_INSTANTIATE(double)
LAPIS_INSTANTIATE(int32_t)
LAPIS_INSTANTIATE(int64_t)
#undef LAPIS_INSTANTIATE

// ---------------------------------------------------------------- checks

void check_defined(const char* op, const char* name, const Tensor& t) {
  LAPIS_CHECK(t.defined(), op, name, " is undefined");
}

void check_shape(const char* op, const char* name, const Tensor& t, const Shape& expected) {
  check_defined(op, name, t);
  LAPIS_CHECK(t.shape() == expected, op, name, " must have shape ", shape_to_string(expected),
              ", got ", t.describe());
}

void check_dim(const char* op, const char* name, const Tensor& t, int64_t dim) {
  check_defined(op, name, t);
  LAPIS_CHECK(t.dim() == dim, op, name, " must have ", dim, " dimensions, got ", t.describe());
}

void check_dtype(const char* op, const char* name, const Tensor& t, Dtype dtype) {
  check_defined(op, name, t);
  LAPIS_CHECK(t.dtype() == dtype, op, name, " must be ", dtype_name(dtype), ", got ",
              t.describe());
}

void check_floating(const char* op, const char* name, const Tensor& t) {
  check_defined(op, name, t);
  LAPIS_CHECK(is_floating(t.dtype()), op, name, " must be f32 or f64, got ", t.describe());
}

void check_index(const char* op, const char* name, const Tensor& t) {
  check_defined(op, name, t);
  LAPIS_CHECK(is_integer(t.dtype()), op, name, " must be i32 or i64, got ", t.describe());
}

void check_same_device(const char* op, const char* name_a, const Tensor& a, const char* name_b,
                       const Tensor& b) {
  check_defined(op, name_a, a);
  check_defined(op, name_b, b);
  LAPIS_CHECK(a.device() == b.device(), op, name_a, " is on ", a.device().to_string(), " but ",
              name_b, " is on ", b.device().to_string());
}

namespace {
void check_dtype_and_device_like(const char* op, const char* name, const Tensor& t,
                                 const char* ref_name, const Tensor& ref) {
  LAPIS_CHECK(t.dtype() == ref.dtype(), op, name, " must have the dtype of ", ref_name, " (",
              ref.describe(), "), got ", t.describe());
  check_same_device(op, name, t, ref_name, ref);
}
}  // namespace

void check_like(const char* op, const char* name, const Tensor& t, const char* ref_name,
                const Tensor& ref) {
  check_defined(op, name, t);
  LAPIS_CHECK(t.shape() == ref.shape(), op, name, " must have the shape of ", ref_name, " (",
              ref.describe(), "), got ", t.describe());
  check_dtype_and_device_like(op, name, t, ref_name, ref);
}

void check_like(const char* op, const char* name, const Tensor& t, const Shape& shape,
                const char* ref_name, const Tensor& ref) {
  check_shape(op, name, t, shape);
  check_dtype_and_device_like(op, name, t, ref_name, ref);
}

}  // namespace lapis
