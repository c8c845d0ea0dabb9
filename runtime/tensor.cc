#include "runtime/tensor.h"

#include <cstring>

#include "runtime/cuda_check.h"
#include "runtime/device_guard.h"
#include "runtime/stream.h"

namespace cf {

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
  CF_CHECK_ARG(src.dtype() == dtype_ && src.numel() == numel(), "Tensor::CopyFrom: cannot copy ",
               src.DebugString(), " into ", DebugString());
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
