// One-line RAII NVTX range: `CF_NVTX_RANGE("unet.mid_block/conv2d");`
// Compiles to nothing without CUDA.
#pragma once

#include "runtime/config.h"  // CF_HAS_CUDA

#if CF_HAS_CUDA
#include <nvtx3/nvToolsExt.h>
namespace cf {
class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};
}  // namespace cf
#define CF_NVTX_RANGE(name) ::cf::NvtxRange CF_CONCAT(cf_nvtx_, __LINE__)(name)
#else
#define CF_NVTX_RANGE(name) ((void)0)
#endif
