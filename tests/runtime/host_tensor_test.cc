// Host tensors as users make and read them: FromValues, RandomNormal /
// RandomUniform, ToVector, Item, converting CopyFrom, and typed access that
// refuses the wrong element type.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace cf {
namespace {

TEST(HostTensor, FromValuesConvertsToEveryDtype) {
  const std::vector<float> v = {1.0f, -2.5f, 0.1f, 65504.0f};
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
    SCOPED_TRACE(DTypeName(t));
    auto x = Tensor::FromValues<float>(v, {2, 2}, t);
    ASSERT_TRUE(x.ok()) << x.status();
    EXPECT_EQ(x->dtype(), t);
    EXPECT_EQ(x->shape(), (Shape{2, 2}));
    auto back = x->ToVector<double>();
    ASSERT_TRUE(back.ok());
    EXPECT_EQ((*back)[0], 1.0);
    EXPECT_EQ((*back)[1], -2.5);
    // 0.1 rounds to the dtype's nearest value; bf16 keeps 8 significant bits.
    const double tol = t == DType::bf16 ? 0.1 * std::ldexp(1.0, -8) : t == DType::f16 ? 0.1 * std::ldexp(1.0, -11) : 1e-8;
    EXPECT_NEAR((*back)[2], 0.1, tol);
  }
  // Exact bit patterns: f16's largest finite value, bf16 round-to-nearest-even.
  auto h = Tensor::FromValues<float>({65504.0f, 65520.0f}, {2}, DType::f16);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->data<f16_t>()[0].bits, 0x7bffu);
  EXPECT_EQ(h->data<f16_t>()[1].bits, 0x7c00u);  // rounds to +inf
  auto bf = Tensor::FromValues<float>({1.0f + 1.0f / 256}, {1}, DType::bf16);  // a tie: to even (1.0)
  ASSERT_TRUE(bf.ok());
  EXPECT_EQ(bf->data<bf16_t>()[0].bits, 0x3f80u);

  auto ints = Tensor::FromValues<int64_t>({3, -1, 7}, {3}, DType::i32);
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ(ints->data<int32_t>()[1], -1);
  auto as_float = Tensor::FromValues<int32_t>({3, -1}, {2}, DType::f16);
  ASSERT_TRUE(as_float.ok());
  EXPECT_EQ(*as_float->ToVector<double>(), (std::vector<double>{3, -1}));
  EXPECT_FALSE(as_float->Item<double>().ok());  // two elements
}

TEST(HostTensor, FromValuesErrors) {
  auto count = Tensor::FromValues<float>({1, 2, 3}, {2, 2});
  EXPECT_FALSE(count.ok());
  EXPECT_NE(count.status().message().find("3 values for shape [2, 2]"), std::string::npos) << count.status();
  auto floating_to_int = Tensor::FromValues<float>({1.5f}, {1}, DType::i32);
  EXPECT_FALSE(floating_to_int.ok());
  auto overflow = Tensor::FromValues<int64_t>({int64_t{1} << 40}, {1}, DType::i32);
  EXPECT_FALSE(overflow.ok());
  EXPECT_NE(overflow.status().message().find("does not fit i32"), std::string::npos) << overflow.status();
  auto inexact = Tensor::FromValues<int64_t>({(int64_t{1} << 24) + 1}, {1}, DType::f32);
  EXPECT_FALSE(inexact.ok());
  auto byte = Tensor::FromValues<int32_t>({256}, {1}, DType::u8);
  EXPECT_FALSE(byte.ok());
}

TEST(HostTensor, ToVectorAndItem) {
  auto x = Tensor::FromValues<double>({0.5, -3.25}, {2}, DType::bf16);
  ASSERT_TRUE(x.ok());
  auto f = x->ToVector<float>();
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)[0], 0.5f);
  EXPECT_EQ((*f)[1], -3.25f);
  // Floating values are not silently truncated to integers.
  auto as_int = x->ToVector<int32_t>();
  EXPECT_FALSE(as_int.ok());
  EXPECT_NE(as_int.status().message().find("floating values convert to float or double only"), std::string::npos);

  auto loss = Tensor::FromValues<float>({0.125f}, {}, DType::f16);
  ASSERT_TRUE(loss.ok());
  auto item = loss->Item<float>();
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(*item, 0.125f);
  EXPECT_FALSE(x->Item<float>().ok());
  EXPECT_FALSE(Tensor().Item<float>().ok());
  EXPECT_FALSE(Tensor().ToVector<float>().ok());

  auto big = Tensor::FromValues<int64_t>({int64_t{1} << 40, 5}, {2}, DType::i64);
  ASSERT_TRUE(big.ok());
  EXPECT_FALSE(big->ToVector<int32_t>().ok());
  auto exact = big->ToVector<int64_t>();
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ((*exact)[0], int64_t{1} << 40);
  auto flags = Tensor::FromValues<int32_t>({0, 1, 1}, {3}, DType::boolean);
  ASSERT_TRUE(flags.ok());
  auto fv = flags->ToVector<float>();
  ASSERT_TRUE(fv.ok());
  EXPECT_EQ(*fv, (std::vector<float>{0, 1, 1}));
}

TEST(HostTensor, CopyFromConvertsBetweenFloatingDtypes) {
  auto h = Tensor::FromValues<float>({1.5f, -0.0f, std::numeric_limits<float>::infinity(), 3e-8f}, {4}, DType::f16);
  ASSERT_TRUE(h.ok());
  auto f = Tensor::Empty({4}, DType::f32);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f->CopyFrom(*h).ok());
  EXPECT_EQ(f->data<float>()[0], 1.5f);
  EXPECT_TRUE(std::signbit(f->data<float>()[1]));
  EXPECT_TRUE(std::isinf(f->data<float>()[2]));
  EXPECT_EQ(f->data<float>()[3], F16BitsToF32(h->data<f16_t>()[3].bits));  // a subnormal half, exactly
  auto nan = Tensor::FromValues<float>({std::nanf("")}, {1}, DType::f32);
  auto nan_bf = Tensor::Empty({1}, DType::bf16);
  ASSERT_TRUE(nan.ok() && nan_bf.ok());
  ASSERT_TRUE(nan_bf->CopyFrom(*nan).ok());
  EXPECT_TRUE(std::isnan(*nan_bf->Item<float>()));
  // Integers and floats do not convert, and element counts must match.
  auto i = Tensor::Empty({4}, DType::i32);
  ASSERT_TRUE(i.ok());
  Status s = i->CopyFrom(*h);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("only between floating dtypes"), std::string::npos) << s;
  auto small = Tensor::Empty({3}, DType::f32);
  ASSERT_TRUE(small.ok());
  EXPECT_FALSE(small->CopyFrom(*h).ok());
}

TEST(HostTensor, RandomTensorsAreSeededAndMatchTheFills) {
  auto a = RandomNormal({64, 33}, DType::bf16, 7, 1.0f, 0.5f);
  auto b = RandomNormal({64, 33}, DType::bf16, 7, 1.0f, 0.5f);
  auto c = RandomNormal({64, 33}, DType::bf16, 8, 1.0f, 0.5f);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  auto va = a->ToVector<double>(), vb = b->ToVector<double>(), vc = c->ToVector<double>();
  ASSERT_TRUE(va.ok() && vb.ok() && vc.ok());
  EXPECT_EQ(*va, *vb);
  EXPECT_NE(*va, *vc);
  double mean = 0;
  for (double v : *va) mean += v;
  mean /= static_cast<double>(va->size());
  EXPECT_NEAR(mean, 1.0, 0.05);  // 2112 samples of sd 0.5: the mean's sd is ~0.011
  // The same numbers as FillNormal into an f32 tensor, rounded.
  auto f = Tensor::Empty({64, 33}, DType::f32);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(FillNormal(*f, 7, 0, 1.0f, 0.5f).ok());
  for (int64_t k = 0; k < f->numel(); ++k)
    ASSERT_EQ((*va)[k], BF16BitsToF32(F32ToBF16Bits(f->data<float>()[k]))) << k;

  auto u = RandomUniform({1000}, DType::f32, 3, -2.0f, 2.0f);
  ASSERT_TRUE(u.ok());
  auto vu = u->ToVector<float>();
  ASSERT_TRUE(vu.ok());
  float lo = 10, hi = -10;
  for (float v : *vu) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GE(lo, -2.0f);
  EXPECT_LT(hi, 2.0f);
  EXPECT_LT(lo, -1.9f);
  EXPECT_GT(hi, 1.9f);
  EXPECT_FALSE(RandomUniform({4}, DType::f32, 3, 1.0f, 0.0f).ok());
  EXPECT_FALSE(RandomNormal({4}, DType::i32, 3).ok());
}

using HostTensorDeathTest = ::testing::Test;

TEST(HostTensorDeathTest, TypedAccessRefusesTheWrongElementType) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto loss = Tensor::FromValues<float>({0.5f}, {}, DType::f16);
  ASSERT_TRUE(loss.ok());
  EXPECT_DEATH((void)loss->data<float>(), "data<T>\\(\\) with T of dtype f32 on a tensor of dtype f16");
  EXPECT_DEATH((void)Tensor().data<float>(), "undefined Tensor");
  // The matching type, and byte reinterpretation, are fine.
  EXPECT_EQ(loss->data<f16_t>()[0].bits, F32ToF16Bits(0.5f));
  EXPECT_EQ(loss->data_as<uint16_t>()[0], F32ToF16Bits(0.5f));
}

}  // namespace
}  // namespace cf
