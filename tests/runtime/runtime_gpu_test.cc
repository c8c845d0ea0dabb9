// Runtime on a CUDA device: RNG bit-identical to the CPU, the caching
// allocator's statistics, copies and events. Skips without a device.
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/allocator.h"
#include "runtime/rng.h"
#include "runtime/stream.h"
#include "runtime/tensor.h"
#include "tests/support/op_harness.h"

namespace cf {
namespace {

class RuntimeGpuTest : public ::testing::Test {
 protected:
  // Skips without a usable device (fails instead under CF_REQUIRE_GPU).
  void SetUp() override { CF_SKIP_WITHOUT_GPU(); }
};

// Poisons a CUDA tensor, fills it there and on the CPU, compares the bytes.
void ExpectRngMatchesCpu(DType dt, int64_t n, uint64_t seed, uint64_t offset, bool normal,
                         Stream* stream) {
  SCOPED_TRACE(absl::StrCat(DTypeName(dt), " n=", n, " offset=", offset,
                            normal ? " normal" : " uniform", stream ? " on a stream" : ""));
  auto cpu = Tensor::Empty({n}, dt);
  auto gpu = Tensor::Empty({n}, dt, Device::CUDA(0));
  ASSERT_TRUE(cpu.ok() && gpu.ok()) << gpu.status();
  ASSERT_TRUE(gpu->FillBytes(0xff).ok());
  const float a = normal ? 0.25f : -3.0f, b = normal ? 1.75f : 5.0f;
  auto fill = [&](Tensor& t, Stream* s) {
    return normal ? FillNormal(t, seed, offset, a, b, s) : FillUniform(t, seed, offset, a, b, s);
  };
  ASSERT_TRUE(fill(*cpu, nullptr).ok());
  Status s = fill(*gpu, stream);
  ASSERT_TRUE(s.ok()) << s;
  if (stream) {
    ASSERT_TRUE(stream->Synchronize().ok());
  }
  auto back = gpu->To(Device::CPU());
  ASSERT_TRUE(back.ok()) << back.status();
  const int64_t size = DTypeSize(dt);
  const auto* x = static_cast<const uint8_t*>(cpu->raw());
  const auto* y = static_cast<const uint8_t*>(back->raw());
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(x + i * size, y + i * size, static_cast<size_t>(size)) != 0) {
      float cv = dt == DType::f32 ? cpu->data<float>()[i] : 0, gv = dt == DType::f32 ? back->data<float>()[i] : 0;
      FAIL() << "element " << i << " differs (f32 values " << cv << " vs " << gv << ")";
    }
  }
}

TEST_F(RuntimeGpuTest, RngMatchesCpuBitForBit) {
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    for (int64_t n : {1, 3, 4, 5, 1000, 4099, (1 << 20) + 3}) {
      for (uint64_t offset : {0ull, 1ull, 2ull, 3ull, 5ull, (1ull << 33) + 1}) {
        for (bool normal : {false, true}) {
          ExpectRngMatchesCpu(dt, n, 0x5eed0000ull + n, offset, normal, nullptr);
        }
      }
    }
  }
}

TEST_F(RuntimeGpuTest, RngMatchesCpuOnAStream) {
  auto stream = Stream::Create(Device::CUDA(0));
  ASSERT_TRUE(stream.ok()) << stream.status();
  for (DType dt : {DType::f32, DType::bf16}) {
    ExpectRngMatchesCpu(dt, 3'000'001, 77, 9, true, stream->get());
    ExpectRngMatchesCpu(dt, 12345, 77, 0, false, stream->get());
  }
}

TEST_F(RuntimeGpuTest, RngRejectsMismatchedStreamAndF64) {
  auto cpu_stream = Stream::Create(Device::CPU());
  auto t = Tensor::Empty({16}, DType::f32, Device::CUDA(0));
  auto t64 = Tensor::Empty({16}, DType::f64, Device::CUDA(0));
  ASSERT_TRUE(cpu_stream.ok() && t.ok() && t64.ok());
  EXPECT_EQ(FillUniform(*t, 1, 0, 0, 1, cpu_stream->get()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FillNormal(*t64, 1, 0, 0, 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RuntimeGpuTest, AllocatorStatsAndCaching) {
  auto alloc_or = CudaAllocator(0);
  ASSERT_TRUE(alloc_or.ok()) << alloc_or.status();
  Allocator* a = *alloc_or;
  EXPECT_EQ(a->device(), Device::CUDA(0));
  a->EmptyCache();
  const AllocatorStats s0 = a->stats();
  EXPECT_EQ(s0.bytes_reserved, s0.bytes_allocated) << "EmptyCache leaves only live blocks";
  a->ResetPeak();

  auto p = a->Allocate(1000);  // a 1024-byte block from cudaMalloc
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*p) % 256, 0u);
  AllocatorStats s1 = a->stats();
  EXPECT_EQ(s1.bytes_allocated - s0.bytes_allocated, 1024);
  EXPECT_EQ(s1.bytes_reserved - s0.bytes_reserved, 1024);
  EXPECT_EQ(s1.num_allocs - s0.num_allocs, 1);
  EXPECT_EQ(s1.num_device_allocs - s0.num_device_allocs, 1);

  a->Free(*p);
  AllocatorStats s2 = a->stats();
  EXPECT_EQ(s2.bytes_allocated, s0.bytes_allocated);
  EXPECT_EQ(s2.bytes_reserved - s0.bytes_reserved, 1024) << "freed blocks stay cached";

  auto q = a->Allocate(1024);  // same size class: reused, no cudaMalloc
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, *p);
  AllocatorStats s3 = a->stats();
  EXPECT_EQ(s3.num_device_allocs, s1.num_device_allocs);
  EXPECT_EQ(s3.num_allocs - s0.num_allocs, 2);

  auto big = a->Allocate(3 << 20);  // large: rounded to 2 MiB multiples (4 MiB)
  ASSERT_TRUE(big.ok());
  AllocatorStats s4 = a->stats();
  EXPECT_EQ(s4.bytes_allocated - s0.bytes_allocated, 1024 + (4 << 20));
  EXPECT_EQ(s4.peak_bytes_allocated, s4.bytes_allocated);
  a->Free(*big);
  a->Free(*q);
  AllocatorStats s5 = a->stats();
  EXPECT_EQ(s5.bytes_allocated, s0.bytes_allocated);
  EXPECT_EQ(s5.peak_bytes_allocated, s4.peak_bytes_allocated);
  EXPECT_EQ(s5.bytes_reserved - s0.bytes_reserved, 1024 + (4 << 20));

  // A much smaller request does not take the 4 MiB block.
  auto small = a->Allocate(512);
  ASSERT_TRUE(small.ok());
  EXPECT_NE(*small, *big);
  a->Free(*small);

  a->EmptyCache();
  AllocatorStats s6 = a->stats();
  EXPECT_EQ(s6.bytes_reserved, s0.bytes_reserved);
  EXPECT_EQ(s6.bytes_allocated, s0.bytes_allocated);

  auto zero = a->Allocate(0);
  ASSERT_TRUE(zero.ok());
  EXPECT_NE(*zero, nullptr);
  a->Free(*zero);
  EXPECT_EQ(a->Allocate(-5).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RuntimeGpuTest, AllocatorOutOfMemorySaysWhatWasAsked) {
  Allocator* a = *CudaAllocator(0);
  const int64_t absurd = int64_t{1} << 50;  // 1 PiB
  auto p = a->Allocate(absurd);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string msg(p.status().message());
  EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(absurd)), std::string::npos) << msg;
  EXPECT_NE(msg.find("allocated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;
  // Still usable afterwards, with no sticky CUDA error.
  auto t = Tensor::Zeros({256}, DType::f32, Device::CUDA(0));
  ASSERT_TRUE(t.ok()) << t.status();
  auto big_tensor = Tensor::Empty({int64_t{1} << 48}, DType::f32, Device::CUDA(0));
  EXPECT_EQ(big_tensor.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(RuntimeGpuTest, BadOrdinalIsAnError) {
  auto a = CudaAllocator(CudaDeviceCount());
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("CUDA device"), std::string_view::npos) << a.status();
  EXPECT_FALSE(Stream::Create(Device::CUDA(-1)).ok());
}

// Random bytes (NaN and subnormal patterns included) survive every copy.
void ExpectCopiesRoundTrip(int64_t n, Stream* stream) {
  SCOPED_TRACE(absl::StrCat("n=", n, stream ? " on a stream" : ""));
  auto host = Tensor::Empty({n}, DType::u8);
  ASSERT_TRUE(host.ok());
  std::mt19937 rng(static_cast<uint32_t>(n));
  for (int64_t i = 0; i < n; ++i) host->data<uint8_t>()[i] = static_cast<uint8_t>(rng());
  auto d1 = Tensor::Empty({n}, DType::u8, Device::CUDA(0));
  auto d2 = Tensor::Empty({n}, DType::u8, Device::CUDA(0));
  auto back = Tensor::Zeros({n}, DType::u8);
  ASSERT_TRUE(d1.ok() && d2.ok() && back.ok());
  ASSERT_TRUE(d1->CopyFrom(*host, stream).ok());  // H2D
  ASSERT_TRUE(d2->CopyFrom(*d1, stream).ok());    // D2D
  ASSERT_TRUE(back->CopyFrom(*d2, stream).ok());  // D2H
  if (stream) {
    ASSERT_TRUE(stream->Synchronize().ok());
  }
  EXPECT_EQ(std::memcmp(host->raw(), back->raw(), static_cast<size_t>(n)), 0);
}

TEST_F(RuntimeGpuTest, CopiesRoundTripBitExactly) {
  for (int64_t n : {1, 7, 4096, (1 << 20) + 5}) ExpectCopiesRoundTrip(n, nullptr);
  auto stream = Stream::Create(Device::CUDA(0));
  ASSERT_TRUE(stream.ok()) << stream.status();
  for (int64_t n : {3, (8 << 20) + 1}) ExpectCopiesRoundTrip(n, stream->get());

  // f32 views: a narrowed slice copies only its rows.
  auto host = Tensor::Empty({4, 3}, DType::f32);
  ASSERT_TRUE(host.ok());
  for (int i = 0; i < 12; ++i) host->data<float>()[i] = static_cast<float>(i);
  auto dev = host->To(Device::CUDA(0));
  ASSERT_TRUE(dev.ok());
  auto rows = dev->Narrow0(1, 3);
  ASSERT_TRUE(rows.ok());
  auto rows_host = rows->To(Device::CPU());
  ASSERT_TRUE(rows_host.ok());
  EXPECT_EQ(rows_host->data<float>()[0], 3.0f);
  EXPECT_EQ(rows_host->data<float>()[5], 8.0f);
}

TEST_F(RuntimeGpuTest, EventsMeasureElapsedTime) {
  auto stream = Stream::Create(Device::CUDA(0));
  auto start = Event::Create(Device::CUDA(0));
  auto stop = Event::Create(Device::CUDA(0));
  ASSERT_TRUE(stream.ok() && start.ok() && stop.ok());
  EXPECT_NE((*stream)->native(), nullptr);
  auto t = Tensor::Empty({int64_t{64} << 20}, DType::f32, Device::CUDA(0));  // 256 MiB
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*start)->Record(**stream).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(FillNormal(*t, i, 0, 0, 1, stream->get()).ok());
  ASSERT_TRUE((*stop)->Record(**stream).ok());
  ASSERT_TRUE((*stop)->Synchronize().ok());
  auto ms = (*stop)->ElapsedMsSince(**start);
  ASSERT_TRUE(ms.ok()) << ms.status();
  EXPECT_GT(*ms, 0.0f);
  EXPECT_LT(*ms, 10000.0f);
  std::printf("4 normal fills of 64M f32: %.3f ms\n", *ms);

  auto cpu_stream = Stream::Create(Device::CPU());
  ASSERT_TRUE(cpu_stream.ok());
  EXPECT_EQ((*start)->Record(**cpu_stream).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cf
