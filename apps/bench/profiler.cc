// The CUDA profiler's capture range (nsys --capture-range=cudaProfilerApi,
// ncu --profile-from-start off): apps/bench/latency.h.
#include "apps/bench/latency.h"
#include "runtime/config.h"

#if CF_HAS_CUDA
#include <cuda_profiler_api.h>
#endif

namespace cf::bench {

#if CF_HAS_CUDA
void ProfilerStart() { (void)cudaProfilerStart(); }
void ProfilerStop() { (void)cudaProfilerStop(); }
#else
void ProfilerStart() {}
void ProfilerStop() {}
#endif

}  // namespace cf::bench
