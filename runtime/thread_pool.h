// A process-wide thread pool for the CPU backend, and ParallelFor on top of it.
#pragma once

#include <cstdint>
#include <functional>

namespace cf {

// Threads that ParallelFor may use, the calling thread included: the
// CF_NUM_THREADS environment variable when set (>= 1), otherwise
// std::thread::hardware_concurrency(). Fixed when the pool first starts.
int NumThreads();

// Calls fn(chunk_begin, chunk_end) over disjoint chunks that cover
// [begin, end) exactly once; every chunk has at least `grain` indices (except
// when the whole range is smaller). Chunks run on the pool and on the calling
// thread; the call returns when all are done. Runs fn(begin, end) inline when
// the range is at most one grain, with one thread, or when called from inside
// another ParallelFor (nesting never deadlocks). If fn throws, the first
// exception is rethrown here after all chunks have finished.
void ParallelFor(int64_t begin, int64_t end, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn);

// Test hook: when set (non-null), ParallelFor calls observer(chunk_begin,
// chunk_end) on the thread that runs each chunk, just before the chunk, so a
// test can check which threads did an op's work. Returns the previous one.
using ParallelForObserver = void (*)(int64_t chunk_begin, int64_t chunk_end);
ParallelForObserver SetParallelForObserver(ParallelForObserver observer);

}  // namespace cf
