// The scratch pool (runtime/scratch.h): a released block is handed out again
// (no new pages), blocks leased at the same time never overlap, small
// requests bypass the pool, and free blocks can be returned to the system.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "runtime/scratch.h"

namespace cf {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

#define SKIP_WITHOUT_POOL()                                                            \
  if (const char* v = std::getenv("CF_SCRATCH_POOL"); v && std::string_view(v) == "0") \
  GTEST_SKIP() << "CF_SCRATCH_POOL=0 turns the pool off"

TEST(ScratchTest, ReusesAReleasedBlockAndGrowsOnlyWhenNeeded) {
  SKIP_WITHOUT_POOL();
  ReleaseFreeScratch();
  void* first;
  {
    ScratchBuffer a(8 * kMiB);
    first = a.data();
    EXPECT_TRUE(Aligned(first));
    EXPECT_GE(a.bytes(), 8 * kMiB);
    std::memset(a.data(), 1, 8 * kMiB);
  }
  {
    ScratchBuffer b(4 * kMiB);  // fits the free 8 MiB block
    EXPECT_EQ(b.data(), first);
    EXPECT_EQ(b.bytes(), 8 * kMiB);
  }
  const int64_t held = ScratchPoolBytes();
  EXPECT_GE(held, 8 * kMiB);
  {
    ScratchBuffer c(16 * kMiB);  // grows the free block instead of adding one
    EXPECT_GE(c.bytes(), 16 * kMiB);
    EXPECT_EQ(ScratchPoolBytes(), held - 8 * kMiB + 16 * kMiB);
  }
  ReleaseFreeScratch();
  EXPECT_EQ(ScratchPoolBytes(), 0);
}

TEST(ScratchTest, BlocksLeasedTogetherDoNotOverlap) {
  ScratchBuffer a(2 * kMiB), b(2 * kMiB);
  ASSERT_NE(a.data(), nullptr);
  ASSERT_NE(b.data(), nullptr);
  const char* pa = a.as<char>();
  const char* pb = b.as<char>();
  EXPECT_TRUE(pa + a.bytes() <= pb || pb + b.bytes() <= pa);
  std::memset(a.data(), 0x11, a.bytes());
  std::memset(b.data(), 0x22, b.bytes());
  EXPECT_EQ(pa[a.bytes() - 1], 0x11);
  EXPECT_EQ(pb[0], 0x22);
}

TEST(ScratchTest, MovesTransferTheLeaseAndSmallBlocksBypassThePool) {
  SKIP_WITHOUT_POOL();
  ReleaseFreeScratch();
  ScratchBuffer small(1000);
  EXPECT_TRUE(Aligned(small.data()));
  EXPECT_EQ(ScratchPoolBytes(), 0);
  ScratchBuffer a(3 * kMiB);
  void* p = a.data();
  ScratchBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.data(), p);
  ScratchBuffer c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  // Released on another thread, then leased again here.
  std::thread([c = std::move(c)]() mutable { ScratchBuffer gone(std::move(c)); }).join();
  ScratchBuffer d(3 * kMiB);
  EXPECT_EQ(d.data(), p);
}

}  // namespace
}  // namespace cf
