#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/allocator.h"
#include "runtime/tensor.h"

namespace cf {
namespace {

TEST(ShapeTest, NumelStridesToString) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s.rank(), 3);
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.dim(-1), 4);
  EXPECT_EQ(s.prod(1, 3), 12);
  auto st = s.strides();
  ASSERT_EQ(st.size(), 3u);
  EXPECT_EQ(st[0], 12);
  EXPECT_EQ(st[1], 4);
  EXPECT_EQ(st[2], 1);
  EXPECT_EQ(s.ToString(), "[2, 3, 4]");

  Shape scalar;
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.ToString(), "[]");
  EXPECT_EQ(Shape({5, 0, 2}).numel(), 0);

  Shape p;
  p.push_back(7);
  p.push_back(1);
  EXPECT_EQ(p, Shape({7, 1}));
  EXPECT_NE(p, Shape({1, 7}));
  EXPECT_EQ(NormalizeAxis(-1, 3), 2);
  EXPECT_EQ(NormalizeAxis(3, 3), -1);
  EXPECT_EQ(NormalizeAxis(-4, 3), -1);
}

TEST(TensorTest, EmptyAndZeros) {
  auto t = Tensor::Empty({4, 5}, DType::f16);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->defined());
  EXPECT_EQ(t->numel(), 20);
  EXPECT_EQ(t->nbytes(), 40);
  EXPECT_TRUE(t->device().is_cpu());
  EXPECT_EQ(t->DebugString(), "f16[4, 5] on cpu");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->raw()) % 256, 0u);

  auto z = Tensor::Zeros({3, 7}, DType::f32);
  ASSERT_TRUE(z.ok()) << z.status();
  for (int i = 0; i < 21; ++i) EXPECT_EQ(z->data<float>()[i], 0.0f);

  auto empty = Tensor::Zeros({0, 3}, DType::f32);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->numel(), 0);

  auto bad = Tensor::Empty({2, -1}, DType::f32);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("[2, -1]"), std::string_view::npos) << bad.status();
  EXPECT_FALSE(Tensor().defined());
}

TEST(TensorTest, ReshapeSharesMemoryAndChecksCount) {
  auto t = Tensor::Zeros({2, 6}, DType::f32);
  ASSERT_TRUE(t.ok());
  auto r = t->Reshape({3, 4});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->raw(), t->raw());
  r->data<float>()[5] = 2.5f;
  EXPECT_EQ(t->data<float>()[5], 2.5f);

  auto bad = t->Reshape({5, 2});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("[5, 2]"), std::string_view::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("f32[2, 6]"), std::string_view::npos) << bad.status();
}

TEST(TensorTest, Narrow0IsAViewOfRows) {
  auto t = Tensor::Empty({5, 3}, DType::i32);
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 15; ++i) t->data<int32_t>()[i] = i;
  auto rows = t->Narrow0(1, 4);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->shape(), Shape({3, 3}));
  EXPECT_EQ(rows->offset(), 12);
  EXPECT_EQ(rows->data<int32_t>()[0], 3);
  EXPECT_EQ(rows->data<int32_t>()[8], 11);
  auto none = t->Narrow0(5, 5);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->numel(), 0);
  EXPECT_FALSE(t->Narrow0(2, 6).ok());
  EXPECT_FALSE(t->Narrow0(3, 2).ok());
  EXPECT_FALSE(t->Narrow0(-1, 2).ok());
}

TEST(TensorTest, CopyFromOnCpu) {
  auto a = Tensor::Empty({2, 3}, DType::f32);
  auto b = Tensor::Zeros({3, 2}, DType::f32);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 6; ++i) a->data<float>()[i] = 1.5f * i;
  ASSERT_TRUE(b->CopyFrom(*a).ok());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(b->data<float>()[i], 1.5f * i);

  // Into a narrowed view: only those rows change.
  auto c = Tensor::Zeros({4, 3}, DType::f32);
  ASSERT_TRUE(c.ok());
  auto rows = c->Narrow0(2, 4);
  ASSERT_TRUE(rows.ok());
  ASSERT_TRUE(rows->CopyFrom(*a).ok());
  EXPECT_EQ(c->data<float>()[5], 0.0f);
  EXPECT_EQ(c->data<float>()[6], 0.0f);
  EXPECT_EQ(c->data<float>()[11], 7.5f);

  auto other_dtype = Tensor::Empty({6}, DType::i32);
  ASSERT_TRUE(other_dtype.ok());
  EXPECT_EQ(other_dtype->CopyFrom(*a).code(), absl::StatusCode::kInvalidArgument);
  auto other_count = Tensor::Empty({7}, DType::f32);
  ASSERT_TRUE(other_count.ok());
  EXPECT_EQ(other_count->CopyFrom(*a).code(), absl::StatusCode::kInvalidArgument);

  auto copy = a->To(Device::CPU());
  ASSERT_TRUE(copy.ok());
  EXPECT_NE(copy->raw(), a->raw());
  EXPECT_EQ(std::memcmp(copy->raw(), a->raw(), 24), 0);
}

TEST(TensorTest, BorrowedStorageIsNotFreed) {
  std::vector<float> host(8, 3.0f);
  const AllocatorStats before = CpuAllocator()->stats();
  {
    auto storage = Storage::Borrow(Device::CPU(), host.data(), 32);
    Tensor t(storage, 0, Shape{8}, DType::f32);
    t.data<float>()[2] = 9.0f;
    auto tail = t.Narrow0(4, 8);
    ASSERT_TRUE(tail.ok());
    ASSERT_TRUE(tail->FillBytes(0).ok());
  }
  // The vector is still ours (ASan would flag a free of it), untouched by the allocator.
  EXPECT_EQ(host[2], 9.0f);
  EXPECT_EQ(host[3], 3.0f);
  EXPECT_EQ(host[4], 0.0f);
  const AllocatorStats after = CpuAllocator()->stats();
  EXPECT_EQ(after.num_allocs, before.num_allocs);
  EXPECT_EQ(after.bytes_allocated, before.bytes_allocated);
}

TEST(AllocatorTest, CpuStatsAreExact) {
  Allocator* a = CpuAllocator();
  EXPECT_TRUE(a->device().is_cpu());
  const AllocatorStats s0 = a->stats();
  a->ResetPeak();
  auto p1 = a->Allocate(1000);  // rounded to 1024
  auto p2 = a->Allocate(0);     // a unique 256-byte block
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_NE(*p1, *p2);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*p1) % 256, 0u);
  AllocatorStats s1 = a->stats();
  EXPECT_EQ(s1.bytes_allocated - s0.bytes_allocated, 1024 + 256);
  EXPECT_EQ(s1.num_allocs - s0.num_allocs, 2);
  EXPECT_EQ(s1.peak_bytes_allocated, s1.bytes_allocated);
  a->Free(*p1);
  AllocatorStats s2 = a->stats();
  EXPECT_EQ(s2.bytes_allocated - s0.bytes_allocated, 256);
  EXPECT_EQ(s2.peak_bytes_allocated, s1.peak_bytes_allocated);
  a->ResetPeak();
  EXPECT_EQ(a->stats().peak_bytes_allocated, s2.bytes_allocated);
  a->Free(*p2);
  a->Free(nullptr);
  EXPECT_EQ(a->stats().bytes_allocated, s0.bytes_allocated);
  EXPECT_FALSE(s1.ToString().empty());

  EXPECT_EQ(a->Allocate(-1).status().code(), absl::StatusCode::kInvalidArgument);

  // A tensor's storage goes back to the allocator when the last view dies.
  {
    auto t = Tensor::Empty({64}, DType::f32);
    ASSERT_TRUE(t.ok());
    auto view = t->Reshape({8, 8});
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(a->stats().bytes_allocated, s0.bytes_allocated + 256);
  }
  EXPECT_EQ(a->stats().bytes_allocated, s0.bytes_allocated);
}

// Blocks of 1 MiB and more are kept after Free and served again for about
// the same size, so a tensor allocated every run touches no new pages.
TEST(AllocatorTest, CpuKeepsLargeBlocksForReuse) {
  Allocator* a = CpuAllocator();
  a->EmptyCache();
  const AllocatorStats s0 = a->stats();
  ASSERT_EQ(s0.bytes_reserved, s0.bytes_allocated) << "EmptyCache leaves only live blocks";
  const int64_t mib = int64_t{1} << 20;
  auto p1 = a->Allocate(3 * mib);
  ASSERT_TRUE(p1.ok());
  a->Free(*p1);
  AllocatorStats s1 = a->stats();
  EXPECT_EQ(s1.bytes_allocated, s0.bytes_allocated);
  EXPECT_EQ(s1.bytes_reserved - s0.bytes_reserved, 3 * mib) << "the freed block stays";

  auto p2 = a->Allocate(3 * mib - 1000);  // same size class: the same block, no system call
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(*p2, *p1);
  AllocatorStats s2 = a->stats();
  EXPECT_EQ(s2.num_device_allocs, s1.num_device_allocs);
  EXPECT_EQ(s2.bytes_allocated - s0.bytes_allocated, 3 * mib) << "counted at the block's size";

  auto p3 = a->Allocate(2 * mib);  // the leased block is not handed out twice
  ASSERT_TRUE(p3.ok());
  EXPECT_NE(*p3, *p2);
  a->Free(*p2);
  a->Free(*p3);
  // A much smaller request does not take a larger cached block (at most 1/8 slack).
  auto p4 = a->Allocate(mib + mib / 2);
  ASSERT_TRUE(p4.ok());
  EXPECT_NE(*p4, *p1);
  EXPECT_NE(*p4, *p3);
  EXPECT_EQ(a->stats().num_device_allocs - s2.num_device_allocs, 2);
  a->Free(*p4);
  EXPECT_EQ(a->stats().bytes_allocated, s0.bytes_allocated);
  a->EmptyCache();
  const AllocatorStats s5 = a->stats();
  EXPECT_EQ(s5.bytes_reserved, s0.bytes_reserved);
  EXPECT_EQ(s5.bytes_allocated, s0.bytes_allocated);
}

TEST(DeviceTest, NamesAndAvailability) {
  EXPECT_EQ(Device::CPU().ToString(), "cpu");
  EXPECT_EQ(Device::CUDA(1).ToString(), "cuda:1");
  EXPECT_TRUE(CheckDeviceAvailable(Device::CPU()).ok());
  // Never crashes, whatever the machine; without CUDA it says why.
  const int n = CudaDeviceCount();
  EXPECT_GE(n, 0);
  Status s = CheckDeviceAvailable(Device::CUDA(0));
  if (!kBuiltWithCuda) {
    EXPECT_EQ(n, 0);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(s.message().find("no CUDA backend"), std::string_view::npos) << s;
  }
  EXPECT_EQ(s.ok(), n > 0) << s;
  EXPECT_FALSE(CheckDeviceAvailable(Device::CUDA(n)).ok());
  auto alloc = AllocatorFor(Device::CUDA(n));
  EXPECT_FALSE(alloc.ok());
  if (n == 0) {
    auto t = Tensor::Empty({2}, DType::f32, Device::CUDA(0));
    EXPECT_FALSE(t.ok());
    EXPECT_NE(t.status().message().find("cuda:0"), std::string_view::npos) << t.status();
  }
}

}  // namespace
}  // namespace cf
