// Helpers of the interpreted kernel tests (tests/**/*_interp_test.cc): CPU
// tensors copied into the interpreter's checked "device" memory (optionally
// misaligned by a few elements, as a view with a byte offset is), launch
// configurations from a kernel's launch geometry, and a comparison that
// allows NaN and infinities where the CPU kernel produces them.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/kdev/kdev.h"
#include "runtime/tensor.h"

namespace cf::testing {

// Calls fn(T{}) with T the kd storage type of the floating dtype t (float,
// kd::half, kd::bfloat16); an error for other dtypes.
template <typename F> Status DispatchKdFloat(DType t, F&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::f16: return fn(kd::half{});
    case DType::bf16: return fn(kd::bfloat16{});
    default: return absl::InvalidArgumentError(absl::StrCat("no kd float type for ", DTypeName(t)));
  }
}

// A tensor in interpreter global memory: `numel` elements of `dtype` starting
// `offset` elements past a 256-byte boundary, registered as one Buffer of
// exactly those elements (so an access one past either end is reported).
class DevTensor {
 public:
  // A copy of the CPU tensor t.
  DevTensor(const Tensor& t, std::string name, int64_t offset = 0) : DevTensor(t.shape(), t.dtype(), std::move(name), offset) {
    if (t.nbytes() > 0) std::memcpy(data(), t.raw(), static_cast<size_t>(t.nbytes()));
  }
  // NaN-poisoned (0xff bytes) storage of `shape`.
  DevTensor(const Shape& shape, DType dtype, std::string name, int64_t offset = 0)
      : shape_(shape), dtype_(dtype), offset_(offset) {
    const size_t es = static_cast<size_t>(DTypeSize(dtype));
    const size_t bytes = (static_cast<size_t>(shape.numel()) + static_cast<size_t>(offset)) * es;
    mem_.reset(static_cast<unsigned char*>(std::aligned_alloc(256, (bytes + 256) / 256 * 256)));
    std::memset(mem_.get(), 0xff, bytes);
    name_ = std::move(name);
  }

  void* data() const { return mem_.get() + offset_ * DTypeSize(dtype_); }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int64_t numel() const { return shape_.numel(); }

  // The checked pointer, as storage type T (its size must be the dtype's).
  template <class T> kd::Ptr<T> ptr() {
    EXPECT_EQ(sizeof(T), static_cast<size_t>(DTypeSize(dtype_))) << name_;
    if (!buf_) {
      auto b = std::make_shared<kd::interp::Buffer<T>>(static_cast<T*>(data()), static_cast<size_t>(numel()), name_);
      buf_ = b;
    }
    return static_cast<kd::interp::Buffer<T>*>(buf_.get())->ptr();
  }

  // The contents as a CPU tensor.
  Tensor ToTensor() const {
    Tensor t = Tensor::Empty(shape_, dtype_).value();
    if (t.nbytes() > 0) std::memcpy(t.raw(), data(), static_cast<size_t>(t.nbytes()));
    return t;
  }

 private:
  struct Free {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  Shape shape_;
  DType dtype_;
  int64_t offset_;
  std::string name_;
  std::unique_ptr<unsigned char, Free> mem_;
  std::shared_ptr<void> buf_;  // the Buffer<T>, deleted as its own type
};

// A launch configuration; dynamic shared memory above 48 KiB is opted in, as
// the CUDA launchers do with cudaFuncSetAttribute.
inline kd::interp::LaunchConfig KdConfig(const std::string& name, kd::Dim3 grid, kd::Dim3 block, size_t smem = 0) {
  kd::interp::LaunchConfig c;
  c.name = name;
  c.grid = grid;
  c.block = block;
  c.dynamic_smem = smem;
  c.smem_opt_in = smem > 48 * 1024;
  return c;
}

// got and want elementwise: NaN where want is NaN, the same infinity where it
// is infinite, |got - want| <= atol + rtol |want| elsewhere.
inline ::testing::AssertionResult MatchesWithSpecials(const std::vector<double>& got, const std::vector<double>& want,
                                                      double rtol, double atol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << got.size() << " values, expected " << want.size();
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    bool ok;
    if (std::isnan(w)) ok = std::isnan(g);
    else if (std::isinf(w)) ok = g == w;
    else ok = std::isfinite(g) && std::abs(g - w) <= atol + rtol * std::abs(w);
    if (!ok) return ::testing::AssertionFailure() << "element " << i << ": got " << g << ", expected " << w;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace cf::testing
