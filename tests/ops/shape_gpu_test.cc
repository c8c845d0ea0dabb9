// CUDA kernels of the shape family against the CPU ones (outputs poisoned
// first): every copy-engine path (vector rows, tiled transposes, the generic
// per-element kernel, unaligned pointers), f32/f16/bf16 and integer dtypes.
#include "ops/shape/shape.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

// Data movement is exact: CPU and CUDA must agree bit for bit.
void ExpectSame(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs) {
  for (DType t : kGpuDTypes) EXPECT_TRUE(CudaMatchesCpu(op, ins, attrs, t, 0, 0)) << op << " " << DTypeName(t);
}

TEST(ShapeGpu, Reshape) {
  CF_SKIP_WITHOUT_GPU();
  ExpectSame("reshape", {RandomTensor({3, 5, 7}, DType::f32, 1)}, {{"shape", std::vector<int64_t>{-1, 7}}});
}

TEST(ShapeGpu, PermuteEveryPath) {
  CF_SKIP_WITHOUT_GPU();
  struct Case {
    Shape shape;
    std::vector<int64_t> perm;
  };
  const Case cases[] = {
      {{3, 33, 65}, {0, 2, 1}},          // tiled transpose, partial tiles
      {{2, 9, 11, 19}, {0, 3, 1, 2}},    // NHWC -> NCHW (tiled)
      {{2, 19, 9, 11}, {0, 2, 3, 1}},    // NCHW -> NHWC (tiled)
      {{2, 64, 8, 40}, {0, 2, 1, 3}},    // [B, N, H, D] -> [B, H, N, D]: 16-byte vector rows
      {{2, 7, 3, 5}, {0, 2, 1, 3}},      // odd inner rows: narrow vectors or elements
      {{2, 3, 4, 5, 3}, {4, -2, 0, 2, 1}},  // generic
      {{4, 6, 5}, {2, 1, 0}},
      {{70000, 3}, {1, 0}},              // a long thin transpose: thousands of tiles along grid x
      {{7}, {0}},
  };
  for (const Case& c : cases) ExpectSame("permute", {RandomTensor(c.shape, DType::f32, 2)}, {{"perm", c.perm}});
}

TEST(ShapeGpu, PermuteIntegerDtypes) {
  CF_SKIP_WITHOUT_GPU();
  for (DType t : {DType::i32, DType::i64}) {
    EXPECT_TRUE(CudaMatchesCpu("permute", {RandomIndices({2, 5, 7, 3}, t, 3, 100)},
                               {{"perm", std::vector<int64_t>{0, 3, 1, 2}}}, DType::f32, 0, 0));
    EXPECT_TRUE(CudaMatchesCpu("permute", {RandomIndices({2, 6, 4, 8}, t, 3, 100)},
                               {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, DType::f32, 0, 0));
  }
}

TEST(ShapeGpu, ConcatAndSplit) {
  CF_SKIP_WITHOUT_GPU();
  ExpectSame("concat", {RandomTensor({2, 5, 6, 64}, DType::f32, 4), RandomTensor({2, 5, 6, 32}, DType::f32, 5)},
             {{"axis", int64_t{-1}}});
  ExpectSame("concat", {RandomTensor({2, 3, 7}, DType::f32, 6), RandomTensor({2, 5, 7}, DType::f32, 7),
                        RandomTensor({2, 1, 7}, DType::f32, 8)},
             {{"axis", int64_t{1}}});
  ExpectSame("concat", {RandomTensor({3}, DType::f32, 9), RandomTensor({5}, DType::f32, 10)}, {{"axis", int64_t{0}}});
  ExpectSame("split", {RandomTensor({2, 5, 6, 96}, DType::f32, 11)},
             {{"sizes", std::vector<int64_t>{64, 32}}, {"axis", int64_t{-1}}});
  ExpectSame("split", {RandomTensor({3, 9, 5}, DType::f32, 12)},
             {{"sizes", std::vector<int64_t>{2, 3, 4}}, {"axis", int64_t{1}}});
}

TEST(ShapeGpu, SliceAndBackward) {
  CF_SKIP_WITHOUT_GPU();
  auto attrs = [](int64_t axis, int64_t start, int64_t end, int64_t step) {
    return Attrs{{"axis", axis}, {"start", start}, {"end", end}, {"step", step}};
  };
  Tensor x = RandomTensor({3, 17, 12}, DType::f32, 13);
  ExpectSame("slice", {x}, attrs(1, 3, 11, 1));
  ExpectSame("slice", {x}, attrs(-1, 1, 12, 1));   // unaligned source pointer
  ExpectSame("slice", {x}, attrs(1, -15, kSliceToEnd, 4));
  ExpectSame("slice", {x}, attrs(2, 0, 12, 5));    // generic (strided inner)
  ExpectSame("slice_backward", {RandomTensor({3, 4, 12}, DType::f32, 14)},
             {{"axis", int64_t{1}}, {"start", int64_t{2}}, {"step", int64_t{4}}, {"dim", int64_t{17}}});
  ExpectSame("slice_backward", {RandomTensor({3, 5, 3}, DType::f32, 15)},
             {{"axis", int64_t{-1}}, {"start", int64_t{1}}, {"step", int64_t{3}}, {"dim", int64_t{8}}});
}

TEST(ShapeGpu, Pad) {
  CF_SKIP_WITHOUT_GPU();
  ExpectSame("pad", {RandomTensor({2, 9, 11, 64}, DType::f32, 16)},
             {{"pads", std::vector<int64_t>{0, 0, 1, 1, 1, 1, 0, 0}}});  // vectorised C runs
  ExpectSame("pad", {RandomTensor({2, 9, 11, 3}, DType::f32, 17)},
             {{"pads", std::vector<int64_t>{0, 0, 0, 1, 0, 1, 0, 0}}, {"value", -2.5}});
  ExpectSame("pad", {RandomTensor({3, 6, 5}, DType::f32, 18)},
             {{"pads", std::vector<int64_t>{-1, 1, 2, -3, 1, 2}}, {"value", 1.0}});
  EXPECT_TRUE(CudaMatchesCpu("pad", {RandomIndices({4, 5}, DType::i64, 19, 50)},
                             {{"pads", std::vector<int64_t>{1, 0, 2, 2}}, {"value", 7.0}}, DType::f32, 0, 0));
}

TEST(ShapeGpu, SdSizes) {
  CF_SKIP_WITHOUT_GPU();
  // The benchmark shapes at batch 1: NHWC <-> NCHW at 64x64x320, the skip concat.
  Tensor x = RandomTensor({1, 64, 64, 320}, DType::f32, 20);
  ExpectSame("permute", {x}, {{"perm", std::vector<int64_t>{0, 3, 1, 2}}});
  ExpectSame("concat", {RandomTensor({1, 64, 64, 640}, DType::f32, 21), x}, {{"axis", int64_t{3}}});
}

}  // namespace
}  // namespace cf::testing
