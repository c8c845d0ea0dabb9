// Tensor: a dtype, a shape and a byte offset into shared storage on a device.
// Tensors are always contiguous (row-major); views share storage.
#pragma once

#include <memory>
#include <string>

#include "runtime/allocator.h"
#include "runtime/dtype.h"
#include "runtime/shape.h"

namespace cf {

class Stream;

// A block of device or host memory. Owning storage frees through its
// allocator; borrowed storage (an executor's arena slice, a user pointer) does not.
class Storage {
 public:
  static StatusOr<std::shared_ptr<Storage>> Allocate(Device device, int64_t bytes);
  static std::shared_ptr<Storage> Borrow(Device device, void* data, int64_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  int64_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Storage(Device device, void* data, int64_t bytes, Allocator* owner)
      : device_(device), data_(data), bytes_(bytes), owner_(owner) {}
  Device device_;
  void* data_;
  int64_t bytes_;
  Allocator* owner_;  // null when borrowed
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> storage, int64_t offset, Shape shape, DType dtype);

  // New uninitialised tensor on `device`.
  static StatusOr<Tensor> Empty(const Shape& shape, DType dtype, Device device = Device::CPU());
  static StatusOr<Tensor> Zeros(const Shape& shape, DType dtype, Device device = Device::CPU());

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::CPU(); }
  int64_t numel() const { return shape_.numel(); }
  int64_t nbytes() const { return numel() * DTypeSize(dtype_); }
  int64_t offset() const { return offset_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  void* raw() const { return static_cast<char*>(storage_->data()) + offset_; }
  template <typename T> T* data() const { return static_cast<T*>(raw()); }

  // Same memory, new shape with the same element count (no copy).
  StatusOr<Tensor> Reshape(const Shape& shape) const;
  // Rows [begin, end) of the first dimension (no copy).
  StatusOr<Tensor> Narrow0(int64_t begin, int64_t end) const;

  // Copies `src` into this tensor (same dtype and element count; any devices).
  // With a CUDA stream the copy is asynchronous on it; otherwise complete on return.
  Status CopyFrom(const Tensor& src, Stream* stream = nullptr);
  // A new tensor with this one's contents on `device`.
  StatusOr<Tensor> To(Device device) const;
  // Fills every byte with `byte` (0xff poisons floats with NaN); complete on return.
  Status FillBytes(uint8_t byte);

  std::string DebugString() const;  // "f32[2, 3] on cpu"

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::f32;
};

}  // namespace cf
