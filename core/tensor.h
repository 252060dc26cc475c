// Tensor: a contiguous, row-major, typed block of memory on one device.
//
// Copying a Tensor copies the handle (both share storage); clone() copies the data; to(device)
// is the only way across devices. There are no strides: reshape() shares storage with a new shape
// of the same element count, and slice() shares it as a contiguous run of leading-axis rows.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/random.h"

namespace lapis {

using Shape = std::vector<int64_t>;
std::string shape_to_string(const Shape& shape);  // "[128, 64]"
int64_t shape_numel(const Shape& shape);

// Owns one allocation; the destructor never throws.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: defined() == false

  // Factories. Memory of empty() is uninitialised.
  static Tensor empty(const Shape& shape, Dtype dtype = Dtype::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, Dtype dtype = Dtype::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, Dtype dtype = Dtype::F32,
                     Device device = Device::cpu());
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                            Device device = Device::cpu());
  // i.i.d. draws; the values depend only on the generator state, not on the device.
  static Tensor randn(const Shape& shape, Generator& gen, Dtype dtype = Dtype::F32,
                      Device device = Device::cpu(), double mean = 0.0, double stddev = 1.0);
  static Tensor rand_uniform(const Shape& shape, Generator& gen, double low, double high,
                             Dtype dtype = Dtype::F32, Device device = Device::cpu());
  // Integers uniform in [low, high).
  static Tensor randint(const Shape& shape, Generator& gen, int64_t low, int64_t high,
                        Dtype dtype = Dtype::I64, Device device = Device::cpu());

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t axis) const;  // negative axis counts from the end
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  Dtype dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }
  std::string describe() const;  // "f32 [128, 64] on cuda:0"

  // Typed raw pointer; throws when T does not match dtype(). nullptr when numel() == 0.
  template <typename T> T* data() const;
  void* raw_data() const;

  Tensor to(Device device) const;  // same tensor when already there
  Tensor to(Dtype dtype) const;    // converted copy on the same device (CPU conversion)
  Tensor clone() const;
  Tensor reshape(const Shape& shape) const;  // shares storage; -1 infers one extent
  // Rows [begin, end) of the leading axis (0 <= begin <= end <= size(0)); shares storage, so
  // writes through the slice land in this tensor (e.g. Q, K and V as slices of one [3, N, C]
  // buffer). Still contiguous.
  Tensor slice(int64_t begin, int64_t end) const;
  // Copies src's values into this tensor (same dtype and numel, any devices).
  void copy_from(const Tensor& src);
  void fill(double value);
  void zero();

  // Host copies of the values (copies from the device when needed).
  template <typename T> std::vector<T> to_vector() const;
  // The single value of a one-element tensor, converted to double.
  double item() const;

 private:
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Dtype dtype, size_t offset_bytes = 0);
  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;  // where this tensor's first element sits in storage_
  Shape shape_;
  int64_t numel_ = 0;
  Dtype dtype_ = Dtype::F32;
  Device device_;
};

// ---- argument checks shared by every op's dispatch ----
// Throws "<op>: <name> is undefined/on <device>/<dtype> ..." with the tensor's description.
void check_defined(const char* op, const char* name, const Tensor& t);
void check_shape(const char* op, const char* name, const Tensor& t, const Shape& expected);
void check_dim(const char* op, const char* name, const Tensor& t, int64_t dim);
void check_dtype(const char* op, const char* name, const Tensor& t, Dtype dtype);
void check_floating(const char* op, const char* name, const Tensor& t);
void check_index(const char* op, const char* name, const Tensor& t);
void check_same_device(const char* op, const char* name_a, const Tensor& a, const char* name_b,
                       const Tensor& b);
// t defined, with ref's shape, dtype and device.
void check_like(const char* op, const char* name, const Tensor& t, const char* ref_name,
                const Tensor& ref);
// t defined with `shape`, and ref's dtype and device.
void check_like(const char* op, const char* name, const Tensor& t, const Shape& shape,
                const char* ref_name, const Tensor& ref);

}  // namespace lapis
