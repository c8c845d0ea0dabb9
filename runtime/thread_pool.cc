#include "runtime/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace cf {
namespace {

// True on pool workers and on a caller while it runs chunks: a ParallelFor
// issued from there runs inline instead of queueing behind its own parent.
thread_local bool t_in_parallel = false;

int ThreadsFromEnvironment() {
  if (const char* env = std::getenv("CF_NUM_THREADS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1) return static_cast<int>(std::min<long>(v, 1024));
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Workers wait on one FIFO of tasks. The pool lives for the whole process
// (never destroyed, so exit does not join threads that static destructors
// might still need).
class ThreadPool {
 public:
  explicit ThreadPool(int num_threads) {
    for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  }
  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  int num_workers() const { return static_cast<int>(workers_.size()); }

  void Submit(std::function<void()> task, int copies) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 0; i < copies; ++i) queue_.push_back(task);
    }
    if (copies == 1) {
      cv_.notify_one();
    } else {
      cv_.notify_all();
    }
  }

 private:
  void WorkerLoop() {
    t_in_parallel = true;
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> workers_;
};

ThreadPool& Pool() {
  static ThreadPool* pool = new ThreadPool(ThreadsFromEnvironment());
  return *pool;
}

std::atomic<ParallelForObserver> g_observer{nullptr};

void Observe(int64_t b, int64_t e) {
  if (ParallelForObserver o = g_observer.load(std::memory_order_acquire)) o(b, e);
}

// One ParallelFor call. Shared with the helper tasks, which may start after
// the caller has finished every chunk; they then find none left and only touch
// the counters here, never `fn`.
struct Job {
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t begin = 0, base = 0, rem = 0, num_chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::condition_variable cv;
  std::exception_ptr error;

  int64_t ChunkStart(int64_t c) const { return begin + c * base + std::min(c, rem); }

  // Claims and runs chunks until none are left.
  void RunChunks() {
    for (int64_t c = next.fetch_add(1); c < num_chunks; c = next.fetch_add(1)) {
      try {
        Observe(ChunkStart(c), ChunkStart(c + 1));
        (*fn)(ChunkStart(c), ChunkStart(c + 1));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
      }
      if (done.fetch_add(1) + 1 == num_chunks) {
        std::lock_guard<std::mutex> lock(mu);
        cv.notify_all();
      }
    }
  }
};

}  // namespace

int NumThreads() { return Pool().num_threads(); }

ParallelForObserver SetParallelForObserver(ParallelForObserver observer) {
  return g_observer.exchange(observer, std::memory_order_acq_rel);
}

void ParallelFor(int64_t begin, int64_t end, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t n = end - begin;
  if (n <= grain || t_in_parallel) {
    Observe(begin, end);
    fn(begin, end);
    return;
  }
  ThreadPool& pool = Pool();
  if (pool.num_workers() == 0) {
    Observe(begin, end);
    fn(begin, end);
    return;
  }
  // A few chunks per thread balance load when threads are descheduled; each
  // still has at least `grain` indices.
  const int64_t num_chunks = std::min<int64_t>(n / grain, 4 * int64_t{pool.num_threads()});
  if (num_chunks <= 1) {
    Observe(begin, end);
    fn(begin, end);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->begin = begin;
  job->base = n / num_chunks;
  job->rem = n % num_chunks;
  job->num_chunks = num_chunks;

  const int helpers = static_cast<int>(std::min<int64_t>(num_chunks - 1, pool.num_workers()));
  pool.Submit([job] { job->RunChunks(); }, helpers);

  t_in_parallel = true;
  job->RunChunks();
  t_in_parallel = false;
  {
    std::unique_lock<std::mutex> lock(job->mu);
    job->cv.wait(lock, [&] { return job->done.load() == num_chunks; });
  }
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace cf
