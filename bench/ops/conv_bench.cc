// Microbenchmarks of conv2d and its backward ops at SD1.5 shapes: the dense
// 3x3 320 -> 320 conv of the 64x64 latent (512x512 images) and of 128x128
// (1024x1024), batch 2, and the ConvBlocks' depthwise convs (13x13 and
// friends on 64x64x160). CPU dense variants at reduced sizes; the CPU
// depthwise ones (BM_CpuDepthwise) at the ConvBlock's own shapes, the
// figures docs/ops/conv.md compares with PyTorch (bench/torch/depthwise_cpu.py).
// The kernel is called directly (no executor) on deterministic non-zero
// inputs; counters and timing as in bench/support/bench_harness.h.
#include <algorithm>
#include <memory>
#include <vector>

#include "bench/support/bench_harness.h"
#include "ops/conv/conv_cpu.h"
#include "ops/conv/conv_depthwise_tiled_cpu.h"
#include "ops/conv/conv_winograd_cpu.h"
#include "ops/cpu_util.h"

namespace cf::bench {
namespace {

enum class Kind { kForward, kBackwardInput, kBackwardWeight };

// args of every conv benchmark: n, hw, cin, cout, k, groups, kind; the op
// call they describe in dtype `dt` (DTypeArg).
void BenchConv(benchmark::State& state, int64_t dt, bool cuda) {
  const int64_t n = state.range(0), hw = state.range(1), cin = state.range(2), cout = state.range(3);
  const int64_t k = state.range(4), groups = state.range(5);
  const Kind kind = static_cast<Kind>(state.range(6));
  const DType t = DTypeArg(dt);
  Attrs attrs{{"padding", std::vector<int64_t>{k / 2, k / 2}}, {"groups", groups}};
  if (dt == 3) attrs.Set("allow_tf32", true);
  const Shape x{n, hw, hw, cin}, w{cout, k, k, cin / groups}, y{n, hw, hw, cout};
  std::vector<TensorType> types;
  std::string op;
  switch (kind) {
    case Kind::kForward:
      op = "conv2d";
      types = {{x, t}, {w, t}, {Shape{cout}, t}};
      break;
    case Kind::kBackwardInput:
      op = "conv2d_backward_input";
      attrs.Set("input_shape", std::vector<int64_t>{n, hw, hw, cin});
      types = {{y, t}, {w, t}};
      break;
    case Kind::kBackwardWeight:
      op = "conv2d_backward_weight";
      attrs.Set("weight_shape", std::vector<int64_t>{cout, k, k, cin / groups});
      types = {{x, t}, {y, t}};
      break;
  }
  state.SetLabel(absl::StrCat(op, " ", DTypeArgName(dt)));
  if (cuda) {
    BenchOpCuda(state, op, attrs, types, Fill::kValues);
  } else {
    BenchOpCpu(state, op, attrs, types, Fill::kValues);
  }
}

const char* const kArgNames[] = {"n", "hw", "cin", "cout", "k", "groups", "kind", "dtype"};

// f32.
void BM_CpuConv(benchmark::State& state) { BenchConv(state, 2, false); }
// 3x3 320 -> 320 at 16x16 and 32x32 (the 64x64 latent's work / 16 and / 4 at
// batch 1), its backward ops at 16x16.
BENCHMARK(BM_CpuConv)
    ->Args({1, 16, 320, 320, 3, 1, 0})->Args({1, 32, 320, 320, 3, 1, 0})
    ->Args({1, 16, 320, 320, 3, 1, 1})->Args({1, 16, 320, 320, 3, 1, 2})
    ->Args({1, 32, 320, 320, 1, 1, 0})
    ->ArgNames({kArgNames, kArgNames + 7})->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();

// SD1.5's dense 3x3 convs (padding 1; the forward with its bias), f32, at the
// shapes of bench/torch/conv_cpu.py, which docs/ops/conv.md compares them
// with: 320/640/1280 channels at 64x64 and 32x32, batch 1 and 2, and the
// three stride-2 downsamplers. Args n, hw (input side), cin, cout, stride,
// kind. Three repetitions; the min and the median are the figures to quote.
void BM_CpuConvSd(benchmark::State& state) {
  const int64_t n = state.range(0), hw = state.range(1), cin = state.range(2), cout = state.range(3);
  const int64_t s = state.range(4);
  const Kind kind = static_cast<Kind>(state.range(5));
  const DType t = DType::f32;
  const int64_t ho = (hw + 2 - 3) / s + 1;
  Attrs attrs{{"padding", std::vector<int64_t>{1, 1}}, {"stride", std::vector<int64_t>{s, s}}};
  const Shape x{n, hw, hw, cin}, w{cout, 3, 3, cin}, y{n, ho, ho, cout};
  std::string op = "conv2d";
  std::vector<TensorType> types = {{x, t}, {w, t}, {Shape{cout}, t}};
  if (kind == Kind::kBackwardInput) {
    op = "conv2d_backward_input";
    attrs.Set("input_shape", std::vector<int64_t>{n, hw, hw, cin});
    types = {{y, t}, {w, t}};
  } else if (kind == Kind::kBackwardWeight) {
    op = "conv2d_backward_weight";
    attrs.Set("weight_shape", std::vector<int64_t>{cout, 3, 3, cin});
    types = {{x, t}, {y, t}};
  }
  state.SetLabel(absl::StrCat(op, " f32"));
  BenchOpCpu(state, op, attrs, types, Fill::kValues);
}
const char* const kSdArgNames[] = {"n", "hw", "cin", "cout", "stride", "kind"};
BENCHMARK(BM_CpuConvSd)
    ->ArgsProduct({{1, 2}, {64, 32}, {320}, {320}, {1}, {0, 1, 2}})
    ->ArgsProduct({{1, 2}, {64, 32}, {640}, {640}, {1}, {0, 1, 2}})
    ->ArgsProduct({{1, 2}, {64, 32}, {1280}, {1280}, {1}, {0, 1, 2}})
    ->Args({2, 64, 320, 320, 2, 0})->Args({2, 64, 320, 320, 2, 1})->Args({2, 64, 320, 320, 2, 2})
    ->Args({2, 32, 640, 640, 2, 0})->Args({2, 32, 640, 640, 2, 1})->Args({2, 32, 640, 640, 2, 2})
    ->Args({2, 16, 1280, 1280, 2, 0})->Args({2, 16, 1280, 1280, 2, 1})->Args({2, 16, 1280, 1280, 2, 2})
    ->ArgNames({kSdArgNames, kSdArgNames + 6})->Unit(benchmark::kMillisecond)->MinTime(0.3)->UseRealTime()
    ->Repetitions(3)->ReportAggregatesOnly(true)
    ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });

// The same forward and backward input with the packed (or Winograd-
// transformed) weight kept across calls, as the executor keeps it for a
// parameter weight (KernelContext::state): the conv's CPU kernel called
// directly with a state slot, filled by one untimed call. Args n, hw, c (in
// and out), stride, kind (0 or 1), path (0: implicit GEMM, 1: Winograd
// F(4x4, 3x3), stride 1 only).
template <typename T> void KeptWeightConv(benchmark::State& state) {
  ConvParams p;
  p.n = state.range(0), p.h = p.w = state.range(1), p.cin = p.cout = state.range(2);
  p.kh = p.kw = 3, p.sh = p.sw = state.range(3), p.ph = p.pw = 1;
  p.ho = p.wo = (p.h + 2 - 3) / p.sh + 1;
  const Kind kind = static_cast<Kind>(state.range(4));
  const bool winograd = state.range(5) == 1;
  auto values = [](int64_t count, uint64_t seed) {
    std::vector<T> v(count);
    for (int64_t i = 0; i < count; ++i)
      v[i] = FromAcc<T>(static_cast<float>((i * 7919 + seed * 104729) % 2001) / 1000.0f - 1.0f);
    return v;
  };
  const std::vector<T> x = values(p.n * p.h * p.w * p.cin, 1), w = values(p.cout * 9 * p.cin, 2);
  const std::vector<T> bias = values(p.cout, 3), dy = values(p.n * p.ho * p.wo * p.cout, 4);
  std::vector<T> out(kind == Kind::kForward ? dy.size() : x.size());
  std::shared_ptr<void> slot;
  ConvCpuExtras<T> extras;
  extras.weight_state = &slot;
  auto run = [&] {
    if (kind == Kind::kForward) {
      if (winograd) {
        ConvForwardWinogradCpu<T>(p, x.data(), w.data(), bias.data(), out.data(), extras);
      } else {
        ConvForwardGemmCpu<T>(p, x.data(), w.data(), bias.data(), out.data(), extras);
      }
    } else if (winograd) {
      ConvBackwardInputWinogradCpu<T>(p, dy.data(), w.data(), out.data(), extras);
    } else {
      ConvBackwardInputGemmCpu<T>(p, dy.data(), w.data(), out.data(), extras);
    }
  };
  run();  // untimed: packs or transforms the weight into the slot, as the executor's first run does
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(out.data());
  }
  // The direct conv's FLOPs (as everywhere): the Winograd path's rate is "effective".
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * static_cast<double>(p.macs()), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(absl::StrCat(kind == Kind::kForward ? "conv2d" : "conv2d_backward_input", " ",
                              DTypeName(DTypeOf<T>::value), ", kept weight, ",
                              winograd ? "winograd_f4x4" : "implicit_gemm"));
}
void BM_CpuConvSdKeptWeight(benchmark::State& state) { KeptWeightConv<float>(state); }
BENCHMARK(BM_CpuConvSdKeptWeight)
    ->ArgsProduct({{1, 2}, {64, 32}, {320, 640, 1280}, {1}, {0, 1}, {0, 1}})
    ->Args({2, 64, 320, 2, 0, 0})->Args({2, 64, 320, 2, 1, 0})->Args({2, 32, 640, 2, 0, 0})
    ->Args({2, 32, 640, 2, 1, 0})->Args({2, 16, 1280, 2, 0, 0})->Args({2, 16, 1280, 2, 1, 0})
    ->Args({2, 16, 1280, 1, 0, 0})->Args({2, 16, 1280, 1, 0, 1})->Args({2, 16, 640, 1, 0, 0})
    ->Args({2, 16, 640, 1, 0, 1})->Args({2, 8, 1280, 1, 0, 0})->Args({2, 8, 1280, 1, 0, 1})
    // Few tiles (the gate's threshold): 16 and 8 at 640 channels, 8 and 4 at 320.
    ->Args({1, 16, 640, 1, 0, 0})->Args({1, 16, 640, 1, 0, 1})->Args({2, 8, 640, 1, 0, 0})->Args({2, 8, 640, 1, 0, 1})
    ->Args({2, 8, 320, 1, 0, 0})->Args({2, 8, 320, 1, 0, 1})->Args({1, 8, 320, 1, 0, 0})->Args({1, 8, 320, 1, 0, 1})
    ->ArgNames({"n", "hw", "c", "stride", "kind", "path"})->Unit(benchmark::kMillisecond)->MinTime(0.3)
    ->UseRealTime()->Repetitions(3)->ReportAggregatesOnly(true)
    ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });

// The same in bf16 storage: the implicit GEMM multiplies with VDPBF16PS where
// the CPU has it; the Winograd path transforms to f32 and multiplies in f32.
void BM_CpuConvSdKeptWeightBf16(benchmark::State& state) { KeptWeightConv<bf16_t>(state); }
BENCHMARK(BM_CpuConvSdKeptWeightBf16)
    ->ArgsProduct({{2}, {64, 32}, {320, 640}, {1}, {0, 1}, {0, 1}})
    ->ArgNames({"n", "hw", "c", "stride", "kind", "path"})->Unit(benchmark::kMillisecond)->MinTime(0.3)
    ->UseRealTime()->Repetitions(3)->ReportAggregatesOnly(true)
    ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });

// Depthwise K x K, stride 1, padding K/2, no bias (the ConvBlock's convs), f32,
// through the tiled kernels; args n, hw, c, k, kind, portable (1: the forced
// portable path). FLOP/s counts 2 per multiply-add, padding taps included.
// Five repetitions; the min and the median are the figures to quote.
void BM_CpuDepthwise(benchmark::State& state) {
  const int64_t n = state.range(0), hw = state.range(1), c = state.range(2), k = state.range(3);
  const Kind kind = static_cast<Kind>(state.range(4));
  const bool before = ForceDepthwisePortable(state.range(5) != 0);
  const DType t = DType::f32;
  Attrs attrs{{"padding", std::vector<int64_t>{k / 2, k / 2}}, {"groups", c}};
  const Shape x{n, hw, hw, c}, w{c, k, k, 1};
  std::string op = "conv2d";
  std::vector<TensorType> types = {{x, t}, {w, t}};
  if (kind == Kind::kBackwardInput) {
    op = "conv2d_backward_input";
    attrs.Set("input_shape", std::vector<int64_t>{n, hw, hw, c});
    types = {{x, t}, {w, t}};  // grad_out has x's shape (stride 1, padding K/2)
  } else if (kind == Kind::kBackwardWeight) {
    op = "conv2d_backward_weight";
    attrs.Set("weight_shape", std::vector<int64_t>{c, k, k, 1});
    types = {{x, t}, {x, t}};
  }
  state.SetLabel(absl::StrCat(op, " f32 ", DepthwiseTiledPath()));
  BenchOpCpu(state, op, attrs, types, Fill::kValues);
  ForceDepthwisePortable(before);
}
const char* const kDwArgNames[] = {"n", "hw", "c", "k", "kind", "portable"};
BENCHMARK(BM_CpuDepthwise)
    // SD1.5's ConvBlock at 512x512 (C' = 160, 64x64 and the 32x32 pyramid level), K = 13 and 25.
    ->ArgsProduct({{2}, {64, 32}, {160}, {13, 25}, {0, 1, 2}, {0}})
    // SDXL's width (C' = 320), a 3x3 for scale, and the portable path at K = 13.
    ->Args({2, 64, 320, 13, 0, 0})->Args({2, 64, 320, 13, 1, 0})->Args({2, 64, 320, 13, 2, 0})
    ->Args({2, 64, 160, 3, 0, 0})->Args({2, 64, 160, 13, 0, 1})
    ->ArgNames({kDwArgNames, kDwArgNames + 6})->Unit(benchmark::kMillisecond)->MinTime(0.1)->UseRealTime()
    ->Repetitions(5)->ReportAggregatesOnly(true)
    ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });

// Extra arg 7: dtype (DTypeArg: 0 f16, 1 bf16, 2 f32, 3 f32 with TF32).
void BM_CudaConv(benchmark::State& state) { BenchConv(state, state.range(7), true); }
BENCHMARK(BM_CudaConv)
    // Dense 3x3 320 -> 320, batch 2: 64x64 in every dtype, 128x128 in f16; backward ops at 64x64 f16.
    ->Args({2, 64, 320, 320, 3, 1, 0, 0})->Args({2, 64, 320, 320, 3, 1, 0, 1})->Args({2, 64, 320, 320, 3, 1, 0, 2})
    ->Args({2, 64, 320, 320, 3, 1, 0, 3})->Args({2, 128, 320, 320, 3, 1, 0, 0})
    ->Args({2, 64, 320, 320, 3, 1, 1, 0})->Args({2, 64, 320, 320, 3, 1, 2, 0})
    // Depthwise on 64x64x160, batch 2: 13x13 forward / backward (f16, f32), 3x3 and 25x25 forward.
    ->Args({2, 64, 160, 160, 13, 160, 0, 0})->Args({2, 64, 160, 160, 13, 160, 0, 2})
    ->Args({2, 64, 160, 160, 13, 160, 1, 0})->Args({2, 64, 160, 160, 13, 160, 2, 0})
    ->Args({2, 64, 160, 160, 3, 160, 0, 0})->Args({2, 64, 160, 160, 25, 160, 0, 0})
    ->Args({2, 128, 160, 160, 13, 160, 0, 0})
    ->ArgNames({kArgNames, kArgNames + 8})->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cf::bench
