// Helpers for the interpreted op-kernel tests (tests/ops/*_interp_test.cc):
// CPU tensors as "device" buffers of the kdev storage types (optionally at an
// element offset that breaks vector alignment), results back as tensors, a
// dtype dispatch over float / kd::half / kd::bfloat16 (launch configurations
// are KdConfig, tests/support/kdev_tensor.h). The kernels are compared with the
// op's CPU kernel through MatchesCpuReference (tests/support/op_harness.h).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/kdev/kdev.h"
#include "tests/support/kdev_tensor.h"  // KdConfig
#include "tests/support/op_harness.h"

namespace cf::testing {

namespace ki = kd::interp;

template <class T> constexpr DType KdDType() {
  if constexpr (std::is_same_v<T, float>) {
    return DType::f32;
  } else if constexpr (std::is_same_v<T, kd::half>) {
    return DType::f16;
  } else {
    static_assert(std::is_same_v<T, kd::bfloat16>);
    return DType::bf16;
  }
}

// Calls f(T{}) for T the kdev storage type of t (f32, f16, bf16).
template <class F> auto DispatchKd(DType t, F&& f) {
  switch (t) {
    case DType::f16: return f(kd::half{});
    case DType::bf16: return f(kd::bfloat16{});
    default: return f(float{});
  }
}

// "Device" memory holding n values of T, `offset` elements into a larger host
// allocation (offset 1 breaks 4-, 8- and 16-byte alignment for 2- and 4-byte
// types); bounds are checked against exactly the n elements.
template <class T> class DevBuf {
 public:
  // Poisoned (all-ones bytes: NaN) output of n elements.
  DevBuf(size_t n, std::string name, size_t offset = 0) : storage_(offset + std::max<size_t>(n, 1)) {
    std::memset(static_cast<void*>(storage_.data()), 0xff, storage_.size() * sizeof(T));
    buf_ = std::make_unique<ki::Buffer<T>>(storage_.data() + offset, n, std::move(name));
  }
  // The values of t (any floating dtype; exact when t already has T's dtype).
  DevBuf(const Tensor& t, std::string name, size_t offset = 0) : DevBuf(size_t(t.shape().numel()), std::move(name), offset) {
    const std::vector<double> v = ToDoubles(t);
    for (size_t i = 0; i < v.size(); ++i) buf_->host()[i] = T(float(v[i]));
  }
  kd::Ptr<T> ptr() const { return buf_->ptr(); }
  operator kd::Ptr<T>() const { return ptr(); }
  operator kd::Ptr<const T>() const { return ptr(); }
  size_t size() const { return buf_->size(); }
  const T* host() const { return buf_->host(); }
  T* host() { return buf_->host(); }
  // The values as a CPU tensor of T's dtype.
  Tensor ToTensor(const Shape& shape) const {
    std::vector<double> v(size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = double(float(buf_->host()[i]));
    return FromDoubles(v, shape, KdDType<T>());
  }

 private:
  std::vector<T> storage_;
  std::unique_ptr<ki::Buffer<T>> buf_;
};

// The storage dtypes with their conventions tolerance (docs/conventions.md).
inline constexpr DType kInterpDTypes[] = {DType::f32, DType::f16, DType::bf16};

}  // namespace cf::testing
