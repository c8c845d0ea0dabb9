// CPU streams and events (stand-ins that make recording code backend-neutral).
#include "runtime/stream.h"

#include <thread>

#include <gtest/gtest.h>

namespace cf {
namespace {

TEST(StreamTest, CpuStreamIsSynchronous) {
  auto s = Stream::Create(Device::CPU());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->device().is_cpu());
  EXPECT_EQ((*s)->native(), nullptr);
  EXPECT_TRUE((*s)->Synchronize().ok());
}

TEST(StreamTest, CpuEventsMeasureElapsedTime) {
  auto s = Stream::Create(Device::CPU());
  auto start = Event::Create(Device::CPU());
  auto stop = Event::Create(Device::CPU());
  ASSERT_TRUE(s.ok() && start.ok() && stop.ok());
  EXPECT_FALSE((*stop)->ElapsedMsSince(**start).ok()) << "never recorded";
  ASSERT_TRUE((*start)->Record(**s).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE((*stop)->Record(**s).ok());
  ASSERT_TRUE((*stop)->Synchronize().ok());
  auto ms = (*stop)->ElapsedMsSince(**start);
  ASSERT_TRUE(ms.ok()) << ms.status();
  EXPECT_GE(*ms, 19.0f);
  EXPECT_LT(*ms, 5000.0f);
}

TEST(StreamTest, CudaWithoutDeviceFailsClearly) {
  if (CheckDeviceAvailable(Device::CUDA(0)).ok()) GTEST_SKIP() << "a CUDA device is present";
  auto s = Stream::Create(Device::CUDA(0));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cuda:0"), std::string_view::npos) << s.status();
  auto e = Event::Create(Device::CUDA(0));
  EXPECT_FALSE(e.ok());
}

}  // namespace
}  // namespace cf
