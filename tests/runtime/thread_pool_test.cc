#include "runtime/thread_pool.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace cf {
namespace {

TEST(ThreadPoolTest, SizeFollowsEnvironmentOrHardware) {
  if (const char* env = std::getenv("CF_NUM_THREADS"); env != nullptr && std::atoi(env) >= 1) {
    EXPECT_EQ(NumThreads(), std::atoi(env));
  } else {
    EXPECT_EQ(NumThreads(), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
}

// Every index in [begin, end) is visited exactly once, chunks are disjoint
// and at least `grain` long (unless the whole range is shorter).
void CheckCoverage(int64_t begin, int64_t end, int64_t grain) {
  const int64_t n = std::max<int64_t>(end - begin, 0);
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<int64_t> short_chunks{0}, chunks{0};
  ParallelFor(begin, end, grain, [&](int64_t b, int64_t e) {
    ++chunks;
    if (e - b < std::max<int64_t>(grain, 1) && e - b < n) ++short_chunks;
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i - begin)].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << begin + i;
  EXPECT_EQ(short_chunks.load(), 0) << "range [" << begin << ", " << end << ") grain " << grain;
  if (n == 0) {
    EXPECT_EQ(chunks.load(), 0);
  }
}

TEST(ThreadPoolTest, CoversEveryIndexExactlyOnce) {
  for (int64_t n : {0, 1, 2, 7, 100, 1000, 4097, 100003}) {
    for (int64_t grain : {0, 1, 3, 64, 1000, 200000}) {
      CheckCoverage(0, n, grain);
      CheckCoverage(-17, n - 17, grain);
    }
  }
  CheckCoverage(10, 5, 1);  // empty when end < begin
}

TEST(ThreadPoolTest, SmallRangesRunInline) {
  const auto caller = std::this_thread::get_id();
  int calls = 0;
  ParallelFor(0, 100, 100, [&](int64_t b, int64_t e) {
    ++calls;  // not atomic: must run on this thread only
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 100);
  });
  EXPECT_EQ(calls, 1);
  ParallelFor(5, 6, 1, [&](int64_t b, int64_t e) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(e - b, 1);
  });
}

TEST(ThreadPoolTest, UsesSeveralThreadsForLargeRanges) {
  if (NumThreads() < 2) GTEST_SKIP() << "the pool has one thread";
  std::mutex mu;
  std::set<std::thread::id> ids;
  ParallelFor(0, 64, 1, [&](int64_t, int64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_GE(ids.size(), 2u);
}

TEST(ThreadPoolTest, NestedCallsCompleteAndCover) {
  const int64_t outer = 37, inner = 129;
  std::vector<std::atomic<int>> hits(outer * inner);
  ParallelFor(0, outer, 1, [&](int64_t ob, int64_t oe) {
    for (int64_t o = ob; o < oe; ++o) {
      ParallelFor(0, inner, 4, [&](int64_t ib, int64_t ie) {
        for (int64_t i = ib; i < ie; ++i) hits[o * inner + i].fetch_add(1);
        // A third level, for good measure.
        ParallelFor(0, 8, 1, [](int64_t, int64_t) {});
      });
    }
  });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
}

TEST(ThreadPoolTest, ConcurrentCallersFromOtherThreads) {
  std::vector<std::thread> callers;
  std::atomic<int64_t> total{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep) {
        ParallelFor(0, 1000, 10, [&](int64_t b, int64_t e) { total += e - b; });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 4 * 50 * 1000);
}

TEST(ThreadPoolTest, ExceptionsReachTheCallerAfterAllChunks) {
  std::atomic<int64_t> done{0};
  EXPECT_THROW(ParallelFor(0, 1000, 1,
                           [&](int64_t b, int64_t e) {
                             done += e - b;
                             if (b == 0) throw std::runtime_error("chunk failed");
                           }),
               std::runtime_error);
  EXPECT_EQ(done.load(), 1000);
  // The pool still works afterwards.
  std::atomic<int64_t> sum{0};
  ParallelFor(0, 1000, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum.load(), 1000);
}

}  // namespace
}  // namespace cf
