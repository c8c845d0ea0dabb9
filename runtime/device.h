// Device: the CPU, or one CUDA device by ordinal.
#pragma once

#include "runtime/config.h"  // CF_HAS_CUDA

#include <string>

#include "runtime/status.h"

namespace cf {

enum class DeviceKind : uint8_t { kCPU, kCUDA };

struct Device {
  DeviceKind kind = DeviceKind::kCPU;
  int ordinal = 0;

  static Device CPU() { return {DeviceKind::kCPU, 0}; }
  static Device CUDA(int ordinal = 0) { return {DeviceKind::kCUDA, ordinal}; }
  bool is_cpu() const { return kind == DeviceKind::kCPU; }
  bool is_cuda() const { return kind == DeviceKind::kCUDA; }
  bool operator==(const Device& o) const { return kind == o.kind && ordinal == o.ordinal; }
  std::string ToString() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(ordinal); }
};

// True when this build has the CUDA backend compiled in.
constexpr bool kBuiltWithCuda = CF_HAS_CUDA;
// Number of usable CUDA devices (0 without the backend, a driver or a GPU).
int CudaDeviceCount();
// OK when `d` can be used now; otherwise says why (no backend, no GPU, bad ordinal).
Status CheckDeviceAvailable(Device d);

}  // namespace cf
