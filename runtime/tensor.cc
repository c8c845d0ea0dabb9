#include "runtime/tensor.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "runtime/cuda_check.h"
#include "runtime/device_guard.h"
#include "runtime/stream.h"

namespace cf {

namespace detail {
void DataTypeMismatch(DType requested, DType actual) {
  std::fprintf(stderr,
               "convfusion: Tensor::data<T>() with T of dtype %s on a tensor of dtype %s "
               "(use ToVector<T>() to convert, data_as<W>() to reinterpret bytes)\n",
               DTypeName(requested), DTypeName(actual));
  std::abort();
}
void UndefinedTensorAccess() {
  std::fprintf(stderr, "convfusion: data access to an undefined Tensor (default-constructed, or from a failed call)\n");
  std::abort();
}
}  // namespace detail

namespace {

// Element i of host memory `p` of dtype `t`.
double LoadAsDouble(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f16: return F16BitsToF32(static_cast<const uint16_t*>(p)[i]);
    case DType::bf16: return BF16BitsToF32(static_cast<const uint16_t*>(p)[i]);
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
    case DType::boolean: return static_cast<const bool*>(p)[i] ? 1.0 : 0.0;
  }
  return 0;
}
int64_t LoadAsInt64(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return static_cast<const int64_t*>(p)[i];
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
    case DType::boolean: return static_cast<const bool*>(p)[i] ? 1 : 0;
    default: return static_cast<int64_t>(LoadAsDouble(p, t, i));
  }
}
// Stores v into element i of host memory `p` of floating dtype `t`. f16 and
// bf16 round from f32: exact for f32/f16/bf16 sources, and within one
// double rounding of the nearest value for f64 ones.
void StoreFloating(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::f16: static_cast<uint16_t*>(p)[i] = F32ToF16Bits(static_cast<float>(v)); break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = F32ToBF16Bits(static_cast<float>(v)); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    default: break;
  }
}

// This tensor's contents on the host (itself when it already is there).
StatusOr<Tensor> OnHost(const Tensor& t) {
  if (t.device().is_cpu()) return t;
  return t.To(Device::CPU());
}

}  // namespace

StatusOr<std::shared_ptr<Storage>> Storage::Allocate(Device device, int64_t bytes) {
  CF_ASSIGN_OR_RETURN(Allocator * a, AllocatorFor(device));
  CF_ASSIGN_OR_RETURN(void* p, a->Allocate(bytes));
  return std::shared_ptr<Storage>(new Storage(device, p, bytes, a));
}

std::shared_ptr<Storage> Storage::Borrow(Device device, void* data, int64_t bytes) {
  return std::shared_ptr<Storage>(new Storage(device, data, bytes, nullptr));
}

Storage::~Storage() {
  if (owner_ != nullptr) owner_->Free(data_);
}

Tensor::Tensor(std::shared_ptr<Storage> storage, int64_t offset, Shape shape, DType dtype)
    : storage_(std::move(storage)), offset_(offset), shape_(std::move(shape)), dtype_(dtype) {}

StatusOr<Tensor> Tensor::Empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape.dims()) {
    CF_CHECK_ARG(d >= 0, "Tensor::Empty: negative dimension in shape ", shape.ToString());
  }
  CF_ASSIGN_OR_RETURN(auto storage, Storage::Allocate(device, shape.numel() * DTypeSize(dtype)));
  return Tensor(std::move(storage), 0, shape, dtype);
}

StatusOr<Tensor> Tensor::Zeros(const Shape& shape, DType dtype, Device device) {
  CF_ASSIGN_OR_RETURN(Tensor t, Empty(shape, dtype, device));
  CF_RETURN_IF_ERROR(t.FillBytes(0));
  return t;
}

template <typename T>
StatusOr<Tensor> Tensor::FromValues(absl::Span<const T> values, const Shape& shape, DType dtype, Device device) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int32_t> ||
                std::is_same_v<T, int64_t>);
  CF_CHECK_ARG(static_cast<int64_t>(values.size()) == shape.numel(), "Tensor::FromValues: ", values.size(),
               " values for shape ", shape.ToString(), " (", shape.numel(), " elements)");
  CF_CHECK_ARG(!std::is_floating_point_v<T> || IsFloating(dtype), "Tensor::FromValues: floating values cannot make a ",
               DTypeName(dtype), " tensor (only f32, f16, bf16, f64)");
  CF_ASSIGN_OR_RETURN(Tensor host, Empty(shape, dtype));
  void* p = host.raw();
  for (int64_t i = 0; i < shape.numel(); ++i) {
    const T v = values[i];
    if (IsFloating(dtype)) {
      if constexpr (!std::is_floating_point_v<T>) {
        CF_CHECK_ARG(static_cast<T>(static_cast<double>(v)) == v && (dtype == DType::f64 || std::abs(static_cast<double>(v)) <= (1 << 24)),
                     "Tensor::FromValues: value ", v, " at ", i, " is not exact in ", DTypeName(dtype));
      }
      StoreFloating(p, dtype, i, static_cast<double>(v));
      continue;
    }
    const int64_t iv = static_cast<int64_t>(v);
    const bool fits = dtype == DType::i64 ||
                      (dtype == DType::i32 && iv >= std::numeric_limits<int32_t>::min() &&
                       iv <= std::numeric_limits<int32_t>::max()) ||
                      (dtype == DType::u8 && iv >= 0 && iv <= 255) || (dtype == DType::boolean && (iv == 0 || iv == 1));
    CF_CHECK_ARG(fits, "Tensor::FromValues: value ", iv, " at ", i, " does not fit ", DTypeName(dtype));
    switch (dtype) {
      case DType::i32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(iv); break;
      case DType::i64: static_cast<int64_t*>(p)[i] = iv; break;
      case DType::u8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(iv); break;
      case DType::boolean: static_cast<bool*>(p)[i] = iv != 0; break;
      default: break;
    }
  }
  if (device.is_cpu()) return host;
  return host.To(device);
}

template StatusOr<Tensor> Tensor::FromValues<float>(absl::Span<const float>, const Shape&, DType, Device);
template StatusOr<Tensor> Tensor::FromValues<double>(absl::Span<const double>, const Shape&, DType, Device);
template StatusOr<Tensor> Tensor::FromValues<int32_t>(absl::Span<const int32_t>, const Shape&, DType, Device);
template StatusOr<Tensor> Tensor::FromValues<int64_t>(absl::Span<const int64_t>, const Shape&, DType, Device);

StatusOr<Tensor> Tensor::Reshape(const Shape& shape) const {
  CF_CHECK_ARG(shape.numel() == numel(), "Tensor::Reshape: cannot view ", DebugString(), " as ",
               shape.ToString(), " (", numel(), " vs ", shape.numel(), " elements)");
  return Tensor(storage_, offset_, shape, dtype_);
}

StatusOr<Tensor> Tensor::Narrow0(int64_t begin, int64_t end) const {
  CF_CHECK_ARG(shape_.rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0],
               "Tensor::Narrow0: rows [", begin, ", ", end, ") out of range for ", DebugString());
  Shape s = shape_;
  s[0] = end - begin;
  int64_t row_bytes = shape_.prod(1, shape_.rank()) * DTypeSize(dtype_);
  return Tensor(storage_, offset_ + begin * row_bytes, s, dtype_);
}

Status Tensor::CopyFrom(const Tensor& src, Stream* stream) {
  CF_CHECK_ARG(defined() && src.defined(), "Tensor::CopyFrom: undefined tensor");
  CF_CHECK_ARG(src.numel() == numel(), "Tensor::CopyFrom: cannot copy ", src.DebugString(), " into ",
               DebugString(), " (", src.numel(), " vs ", numel(), " elements)");
  if (src.dtype() != dtype_) {
    // Converting copy between floating dtypes, staged through the host and
    // complete on return whatever the stream.
    CF_CHECK_ARG(IsFloating(src.dtype()) && IsFloating(dtype_), "Tensor::CopyFrom: cannot convert ",
                 src.DebugString(), " into ", DebugString(), " (only between floating dtypes)");
    CF_ASSIGN_OR_RETURN(Tensor from, OnHost(src));
    Tensor to = *this;
    if (!device().is_cpu()) {
      CF_ASSIGN_OR_RETURN(to, Empty(shape_, dtype_, Device::CPU()));
    }
    for (int64_t i = 0; i < numel(); ++i) StoreFloating(to.raw(), dtype_, i, LoadAsDouble(from.raw(), from.dtype(), i));
    return device().is_cpu() ? absl::OkStatus() : CopyFrom(to);
  }
  const int64_t n = nbytes();
  if (n == 0) return absl::OkStatus();
  if (device().is_cpu() && src.device().is_cpu()) {
    std::memmove(raw(), src.raw(), static_cast<size_t>(n));
    return absl::OkStatus();
  }
#if CF_HAS_CUDA
  cudaMemcpyKind kind = device().is_cpu()       ? cudaMemcpyDeviceToHost
                        : src.device().is_cpu() ? cudaMemcpyHostToDevice
                                                : cudaMemcpyDeviceToDevice;
  if (stream != nullptr && stream->native() != nullptr) {
    CF_CUDA_CHECK(cudaMemcpyAsync(raw(), src.raw(), static_cast<size_t>(n), kind,
                                  static_cast<cudaStream_t>(stream->native())));
  } else {
    // Without a stream the copy is complete on return: our streams are
    // non-blocking, so they are not ordered after the legacy default stream.
    // Review fix: cudaStreamLegacy is the current device's; make the CUDA
    // side's device current so the copy and the wait are on that device.
    CudaDeviceGuard guard(device().is_cuda() ? device().ordinal : src.device().ordinal);
    CF_RETURN_IF_ERROR(guard.status());
    CF_CUDA_CHECK(cudaMemcpyAsync(raw(), src.raw(), static_cast<size_t>(n), kind, cudaStreamLegacy));
    CF_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
  }
  return absl::OkStatus();
#else
  return absl::FailedPreconditionError(
      absl::StrCat("Tensor::CopyFrom: ", src.DebugString(), " -> ", DebugString(),
                   " needs CUDA, and this build has no CUDA backend"));
#endif
}

template <typename T>
StatusOr<std::vector<T>> Tensor::ToVector() const {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int32_t> ||
                std::is_same_v<T, int64_t>);
  CF_CHECK_ARG(defined(), "Tensor::ToVector: undefined tensor");
  constexpr bool kFloatingT = std::is_floating_point_v<T>;
  CF_CHECK_ARG(kFloatingT || !IsFloating(dtype_), "Tensor::ToVector: cannot read ", DebugString(),
               " as ", DTypeName(DTypeOf<T>::value), " (floating values convert to float or double only)");
  CF_ASSIGN_OR_RETURN(Tensor host, OnHost(*this));
  std::vector<T> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) {
    if constexpr (kFloatingT) {
      out[i] = static_cast<T>(LoadAsDouble(host.raw(), dtype_, i));
    } else {
      const int64_t v = LoadAsInt64(host.raw(), dtype_, i);
      CF_CHECK_ARG(v >= std::numeric_limits<T>::min() && v <= std::numeric_limits<T>::max(),
                   "Tensor::ToVector: element ", i, " of ", DebugString(), " (", v, ") does not fit ",
                   DTypeName(DTypeOf<T>::value));
      out[i] = static_cast<T>(v);
    }
  }
  return out;
}

template <typename T>
StatusOr<T> Tensor::Item() const {
  CF_CHECK_ARG(defined() && numel() == 1, "Tensor::Item: needs a one-element tensor, not ",
               defined() ? DebugString() : std::string("an undefined one"));
  CF_ASSIGN_OR_RETURN(std::vector<T> v, ToVector<T>());
  return v[0];
}

template StatusOr<std::vector<float>> Tensor::ToVector<float>() const;
template StatusOr<std::vector<double>> Tensor::ToVector<double>() const;
template StatusOr<std::vector<int32_t>> Tensor::ToVector<int32_t>() const;
template StatusOr<std::vector<int64_t>> Tensor::ToVector<int64_t>() const;
template StatusOr<float> Tensor::Item<float>() const;
template StatusOr<double> Tensor::Item<double>() const;
template StatusOr<int32_t> Tensor::Item<int32_t>() const;
template StatusOr<int64_t> Tensor::Item<int64_t>() const;

StatusOr<Tensor> Tensor::To(Device device) const {
  CF_ASSIGN_OR_RETURN(Tensor t, Empty(shape_, dtype_, device));
  CF_RETURN_IF_ERROR(t.CopyFrom(*this));
  return t;
}

Status Tensor::FillBytes(uint8_t byte) {
  if (nbytes() == 0) return absl::OkStatus();
  if (device().is_cpu()) {
    std::memset(raw(), byte, static_cast<size_t>(nbytes()));
    return absl::OkStatus();
  }
#if CF_HAS_CUDA
  // Complete on return (see CopyFrom): later work on any stream sees it.
  // Review fix: on this tensor's device (the legacy stream is per device).
  CudaDeviceGuard guard(device().ordinal);
  CF_RETURN_IF_ERROR(guard.status());
  CF_CUDA_CHECK(cudaMemsetAsync(raw(), byte, static_cast<size_t>(nbytes()), cudaStreamLegacy));
  CF_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
  return absl::OkStatus();
#else
  return absl::FailedPreconditionError("Tensor::FillBytes: CUDA tensor in a build without CUDA");
#endif
}

std::string Tensor::DebugString() const {
  return absl::StrCat(DTypeName(dtype_), shape_.ToString(), " on ", device().ToString());
}

}  // namespace cf
