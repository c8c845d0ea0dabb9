// Streams and events. On CUDA they wrap cudaStream_t / cudaEvent_t; on the CPU
// they are synchronous stand-ins (work is done when the call returns), so code
// that records and waits is the same for both backends.
#pragma once

#include <memory>

#include "runtime/device.h"
#include "runtime/status.h"

namespace cf {

class Stream {
 public:
  // A new stream on `device` (CUDA: a non-blocking stream on that ordinal).
  static StatusOr<std::unique_ptr<Stream>> Create(Device device);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  Device device() const { return device_; }
  // cudaStream_t on CUDA, nullptr on the CPU.
  void* native() const { return native_; }
  // Blocks until all work queued on the stream is done.
  Status Synchronize();

 private:
  Stream(Device device, void* native) : device_(device), native_(native) {}
  Device device_;
  void* native_;
};

class Event {
 public:
  static StatusOr<std::unique_ptr<Event>> Create(Device device);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Marks the point in `stream`'s work (CPU: now, by the steady clock).
  Status Record(Stream& stream);
  Status Synchronize();
  // Milliseconds from `start` to this event; both must be recorded and complete.
  StatusOr<float> ElapsedMsSince(const Event& start) const;

 private:
  Event(Device device, void* native) : device_(device), native_(native) {}
  Device device_;
  void* native_;       // cudaEvent_t on CUDA
  double cpu_ms_ = 0;  // steady-clock time of the last Record on the CPU
};

}  // namespace cf
