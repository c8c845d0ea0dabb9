#include "runtime/stream.h"

#include <chrono>

#include "runtime/cuda_check.h"
#include "runtime/device_guard.h"

namespace cf {
namespace {

double SteadyNowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// ---- Stream ----

StatusOr<std::unique_ptr<Stream>> Stream::Create(Device device) {
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(device));
  if (device.is_cpu()) return std::unique_ptr<Stream>(new Stream(device, nullptr));
#if CF_HAS_CUDA
  CudaDeviceGuard guard(device.ordinal);
  CF_RETURN_IF_ERROR(guard.status());
  cudaStream_t s = nullptr;
  CF_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return std::unique_ptr<Stream>(new Stream(device, s));
#else
  return absl::InternalError("unreachable: CUDA device accepted without a CUDA backend");
#endif
}

Stream::~Stream() {
#if CF_HAS_CUDA
  if (native_ != nullptr) (void)cudaStreamDestroy(static_cast<cudaStream_t>(native_));
#endif
}

Status Stream::Synchronize() {
#if CF_HAS_CUDA
  if (native_ != nullptr) CF_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(native_)));
#endif
  return absl::OkStatus();
}

// ---- Event ----

StatusOr<std::unique_ptr<Event>> Event::Create(Device device) {
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(device));
  if (device.is_cpu()) return std::unique_ptr<Event>(new Event(device, nullptr));
#if CF_HAS_CUDA
  CudaDeviceGuard guard(device.ordinal);
  CF_RETURN_IF_ERROR(guard.status());
  cudaEvent_t e = nullptr;
  CF_CUDA_CHECK(cudaEventCreate(&e));  // with timing, for ElapsedMsSince
  return std::unique_ptr<Event>(new Event(device, e));
#else
  return absl::InternalError("unreachable: CUDA device accepted without a CUDA backend");
#endif
}

Event::~Event() {
#if CF_HAS_CUDA
  if (native_ != nullptr) (void)cudaEventDestroy(static_cast<cudaEvent_t>(native_));
#endif
}

Status Event::Record(Stream& stream) {
  CF_CHECK_ARG(stream.device() == device_, "Event::Record: event on ", device_.ToString(),
               " cannot be recorded on a stream of ", stream.device().ToString());
  if (device_.is_cpu()) {
    cpu_ms_ = SteadyNowMs();
    return absl::OkStatus();
  }
#if CF_HAS_CUDA
  CF_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(native_),
                                static_cast<cudaStream_t>(stream.native())));
#endif
  return absl::OkStatus();
}

Status Event::Synchronize() {
#if CF_HAS_CUDA
  if (native_ != nullptr) CF_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(native_)));
#endif
  return absl::OkStatus();
}

StatusOr<float> Event::ElapsedMsSince(const Event& start) const {
  CF_CHECK_ARG(start.device_ == device_, "Event::ElapsedMsSince: events on ",
               start.device_.ToString(), " and ", device_.ToString());
  if (device_.is_cpu()) {
    // The steady clock never reads 0 in practice, so 0 means "never recorded".
    if (cpu_ms_ == 0 || start.cpu_ms_ == 0) {
      return absl::FailedPreconditionError("Event::ElapsedMsSince: an event was never recorded");
    }
    return static_cast<float>(cpu_ms_ - start.cpu_ms_);
  }
#if CF_HAS_CUDA
  float ms = 0;
  CF_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start.native_),
                                     static_cast<cudaEvent_t>(native_)));
  return ms;
#else
  return absl::InternalError("unreachable: CUDA event without a CUDA backend");
#endif
}

}  // namespace cf
