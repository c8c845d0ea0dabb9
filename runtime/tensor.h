// Tensor: a dtype, a shape and a byte offset into shared storage on a device.
// Tensors are always contiguous (row-major); views share storage.
#pragma once

#include <memory>
#include <type_traits>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "runtime/allocator.h"
#include "runtime/dtype.h"
#include "runtime/shape.h"

namespace cf {

class Stream;

namespace detail {
[[noreturn]] void DataTypeMismatch(DType requested, DType actual);
[[noreturn]] void UndefinedTensorAccess();
}  // namespace detail

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
  // A new tensor holding `values` (row-major, values.size() == shape.numel()),
  // converted to `dtype`: floating T to a floating dtype (f16/bf16 round to
  // nearest even), integer T to any dtype (integers must fit, and be exact in
  // a floating dtype). T: float, double, int32_t, int64_t.
  //   Tensor::FromValues<float>({1, 2, 3, 4}, {2, 2}, DType::bf16)
  template <typename T>
  static StatusOr<Tensor> FromValues(absl::Span<const T> values, const Shape& shape,
                                     DType dtype = DTypeOf<T>::value, Device device = Device::CPU());

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::CPU(); }
  int64_t numel() const { return shape_.numel(); }
  int64_t nbytes() const { return numel() * DTypeSize(dtype_); }
  int64_t offset() const { return offset_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // The first byte. An undefined tensor has no memory: calling raw() (or
  // data()) on one is a programming error that stops the program with a message.
  void* raw() const {
    if (storage_ == nullptr) [[unlikely]] detail::UndefinedTensorAccess();
    return static_cast<char*>(storage_->data()) + offset_;
  }
  // Typed access: T must be dtype()'s element type (float for f32, f16_t or
  // __half for f16, bf16_t or __nv_bfloat16 for bf16, double, int32_t,
  // int64_t, uint8_t, bool). A mismatch (reading an f16 tensor as float) is a
  // programming error that stops the program with a message naming both
  // types; ToVector<T>() converts, data_as<W>() reinterprets the bytes.
  template <typename T> T* data() const {
    if (DTypeOf<T>::value != dtype_) [[unlikely]] detail::DataTypeMismatch(DTypeOf<T>::value, dtype_);
    return static_cast<T*>(raw());
  }
  // The bytes reinterpreted as W, unchecked: for kernels that move words
  // (a gather copying 16-byte rows), not for reading values.
  template <typename W> W* data_as() const { return static_cast<W*>(raw()); }

  // Host copies of the values, converted to T (float, double, int32_t or
  // int64_t): floating dtypes convert to floating T, integer and bool dtypes
  // to any T. Works on any device (a CUDA tensor is copied to the host).
  template <typename T> StatusOr<std::vector<T>> ToVector() const;
  // The value of a one-element tensor, converted as ToVector.
  template <typename T> StatusOr<T> Item() const;

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
