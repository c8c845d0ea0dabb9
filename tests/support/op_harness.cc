#include "tests/support/op_harness.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_join.h"
#include "graph/autodiff.h"
#include "ops/cpu_util.h"
#include "runtime/thread_pool.h"

namespace cf::testing {

static double ReadAt(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::f32: return t.data<float>()[i];
    case DType::f64: return t.data<double>()[i];
    case DType::f16: return F16BitsToF32(t.data<f16_t>()[i].bits);
    case DType::bf16: return BF16BitsToF32(t.data<bf16_t>()[i].bits);
    case DType::i32: return t.data<int32_t>()[i];
    case DType::i64: return static_cast<double>(t.data<int64_t>()[i]);
    case DType::u8: return t.data<uint8_t>()[i];
    case DType::boolean: return t.data<bool>()[i] ? 1.0 : 0.0;
  }
  return 0;
}

static void WriteAt(Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case DType::f32: t.data<float>()[i] = static_cast<float>(v); break;
    case DType::f64: t.data<double>()[i] = v; break;
    case DType::f16: t.data<f16_t>()[i].bits = F32ToF16Bits(static_cast<float>(v)); break;
    case DType::bf16: t.data<bf16_t>()[i].bits = F32ToBF16Bits(static_cast<float>(v)); break;
    case DType::i32: t.data<int32_t>()[i] = static_cast<int32_t>(v); break;
    case DType::i64: t.data<int64_t>()[i] = static_cast<int64_t>(v); break;
    case DType::u8: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
    case DType::boolean: t.data<bool>()[i] = v != 0; break;
  }
}

Tensor FromDoubles(const std::vector<double>& values, const Shape& shape, DType dtype) {
  Tensor t = Tensor::Empty(shape, dtype).value();
  for (int64_t i = 0; i < t.numel(); ++i) WriteAt(t, i, values[i]);
  return t;
}

std::vector<double> ToDoubles(const Tensor& t) {
  Tensor c = t.device().is_cpu() ? t : t.To(Device::CPU()).value();
  std::vector<double> v(c.numel());
  for (int64_t i = 0; i < c.numel(); ++i) v[i] = ReadAt(c, i);
  return v;
}

Tensor CastTo(const Tensor& t, DType dtype) { return FromDoubles(ToDoubles(t), t.shape(), dtype); }

Tensor RandomTensor(const Shape& shape, DType dtype, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(shape.numel());
  for (double& x : v) x = dist(rng);
  return FromDoubles(v, shape, dtype);
}

Tensor RandomIndices(const Shape& shape, DType dtype, uint64_t seed, int64_t bound) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> dist(0, bound - 1);
  std::vector<double> v(shape.numel());
  for (double& x : v) x = static_cast<double>(dist(rng));
  return FromDoubles(v, shape, dtype);
}

StatusOr<std::vector<Tensor>> RunOp(absl::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs,
                                    Device device) {
  Graph g;
  Builder b(&g);
  std::vector<Value> ins;
  std::map<std::string, Tensor> bind;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string name = absl::StrCat("x", i);
    ins.push_back(b.Input(name, inputs[i].shape(), inputs[i].dtype()));
    bind[name] = inputs[i];
  }
  std::vector<Value> outs = b.Op(op, ins, attrs);
  for (size_t k = 0; k < outs.size(); ++k) b.MarkOutput(outs[k], absl::StrCat("y", k));
  CF_RETURN_IF_ERROR(b.status());
  ExecutorOptions opts;
  opts.device = device;
  opts.poison = true;
  CF_ASSIGN_OR_RETURN(auto exec, Executor::Create(g, opts));
  return exec->Run(bind);
}

StatusOr<Tensor> RunOp1(absl::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs, Device device) {
  CF_ASSIGN_OR_RETURN(std::vector<Tensor> outs, RunOp(op, inputs, attrs, device));
  if (outs.size() != 1) return absl::InternalError(absl::StrCat(op, " has ", outs.size(), " outputs"));
  return outs[0];
}

namespace {

// Adds `op` on inputs x0, x1, ... of `inputs` to `g`.
Status BuildOneNode(Graph& g, absl::string_view op, const std::vector<TensorType>& inputs, const Attrs& attrs) {
  Builder b(&g);
  std::vector<Value> ins;
  for (size_t i = 0; i < inputs.size(); ++i) ins.push_back(b.Input(absl::StrCat("x", i), inputs[i].shape, inputs[i].dtype));
  b.Op(op, ins, attrs);
  return b.status();
}

}  // namespace

Status BuildStatus(absl::string_view op, const std::vector<TensorType>& inputs, const Attrs& attrs) {
  Graph g;
  return BuildOneNode(g, op, inputs, attrs);
}

Cost CostOfOp(absl::string_view op, const std::vector<TensorType>& inputs, const Attrs& attrs) {
  Graph g;
  Status s = BuildOneNode(g, op, inputs, attrs);
  EXPECT_TRUE(s.ok()) << op << ": " << s.message();
  return g.nodes().empty() ? Cost{} : g.nodes().back().cost;
}

void ExpectError(const Status& s, const std::vector<std::string>& parts) {
  ASSERT_FALSE(s.ok()) << "expected an error containing '" << absl::StrJoin(parts, "', '") << "'";
  const std::string msg(s.message());
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

void ExpectError(absl::string_view op, const std::vector<TensorType>& inputs, const Attrs& attrs,
                 const std::vector<std::string>& parts) {
  SCOPED_TRACE(std::string(op));
  ExpectError(BuildStatus(op, inputs, attrs), parts);
}

::testing::AssertionResult AllClose(const std::vector<double>& actual, const std::vector<double>& expected,
                                    double rtol, double atol) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << "size " << actual.size() << " vs expected " << expected.size();
  int64_t worst = -1, failures = 0;
  double worst_excess = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    double a = actual[i], e = expected[i];
    double err = std::fabs(a - e), allowed = atol + rtol * std::fabs(e);
    // An infinity matches only itself (else inf - x <= rtol * inf would pass
    // any value for an infinite reference).
    bool bad = std::isnan(a) || std::isnan(e) || !(err <= allowed) || ((std::isinf(a) || std::isinf(e)) && a != e);
    if (std::isinf(e) && a == e) bad = false;
    if (!bad) continue;
    ++failures;
    double excess = std::isnan(err) ? INFINITY : err - allowed;
    if (worst < 0 || excess > worst_excess) {
      worst = static_cast<int64_t>(i);
      worst_excess = excess;
    }
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << failures << " of " << actual.size() << " elements differ; worst at "
                                       << worst << ": got " << actual[worst] << ", expected " << expected[worst]
                                       << " (rtol " << rtol << ", atol " << atol << ")";
}

::testing::AssertionResult AllCloseWithSpecials(const std::vector<double>& actual,
                                                const std::vector<double>& expected, double rtol, double atol) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << "size " << actual.size() << " vs expected " << expected.size();
  int64_t failures = 0, first = -1;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    bool ok;
    if (std::isnan(e)) ok = std::isnan(a);
    else if (std::isinf(e) || std::isinf(a)) ok = a == e;
    else ok = !std::isnan(a) && std::fabs(a - e) <= atol + rtol * std::fabs(e);
    if (ok) continue;
    if (failures++ == 0) first = static_cast<int64_t>(i);
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << failures << " of " << actual.size() << " elements differ; first at "
                                       << first << ": got " << actual[first] << ", expected " << expected[first]
                                       << " (rtol " << rtol << ", atol " << atol << ")";
}

Tensor LogUniformTensor(const Shape& shape, DType dtype, uint64_t seed, double lo_exp, double hi_exp, bool positive) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> e(lo_exp, hi_exp);
  std::bernoulli_distribution neg(positive ? 0.0 : 0.5);
  std::vector<double> v(shape.numel());
  for (double& x : v) x = (neg(rng) ? -1 : 1) * std::pow(10.0, e(rng));
  return FromDoubles(v, shape, dtype);
}

::testing::AssertionResult MatchesElementwiseRef(absl::string_view op, const Tensor& x, const Attrs& attrs,
                                                 const std::function<double(double)>& f, double tol) {
  auto y = RunOp1(op, {x}, attrs);
  if (!y.ok()) return ::testing::AssertionFailure() << op << ": " << y.status().message();
  if (y->shape() != x.shape())
    return ::testing::AssertionFailure() << op << " output " << y->shape().ToString() << ", expected "
                                         << x.shape().ToString();
  std::vector<double> want = ToDoubles(x);
  for (double& v : want) v = f(v);
  return AllClose(ToDoubles(*y), want, tol, tol);
}

::testing::AssertionResult CheckVjp(absl::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs,
                                    std::vector<int> check, double tol, int max_points) {
  if (check.empty()) {
    for (size_t i = 0; i < inputs.size(); ++i)
      if (IsFloating(inputs[i].dtype())) check.push_back(static_cast<int>(i));
  }
  // Forward once to learn the outputs; random cotangents r_k.
  auto fwd = RunOp(op, inputs, attrs);
  if (!fwd.ok()) return ::testing::AssertionFailure() << "forward: " << fwd.status().message();
  std::vector<Tensor> r;
  for (size_t k = 0; k < fwd->size(); ++k)
    r.push_back(RandomTensor((*fwd)[k].shape(), DType::f64, 1000 + k));
  auto loss = [&](const std::vector<Tensor>& xs) -> StatusOr<double> {
    CF_ASSIGN_OR_RETURN(std::vector<Tensor> ys, RunOp(op, xs, attrs));
    double l = 0;
    for (size_t k = 0; k < ys.size(); ++k) {
      if (!IsFloating(ys[k].dtype())) continue;
      std::vector<double> y = ToDoubles(ys[k]), rk = ToDoubles(r[k]);
      for (size_t i = 0; i < y.size(); ++i) l += y[i] * rk[i];
    }
    return l;
  };

  // The autodiff graph.
  Graph g;
  Builder b(&g);
  std::vector<Value> xs, seeds;
  std::map<std::string, Tensor> bind;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string name = absl::StrCat("x", i);
    xs.push_back(b.Input(name, inputs[i].shape(), inputs[i].dtype()));
    bind[name] = inputs[i];
  }
  std::vector<Value> ys = b.Op(op, xs, attrs);
  std::vector<Value> used_ys;
  for (size_t k = 0; k < ys.size(); ++k) {
    if (!IsFloating(ys[k].dtype())) continue;
    std::string name = absl::StrCat("r", k);
    seeds.push_back(b.Input(name, r[k].shape(), r[k].dtype()));
    used_ys.push_back(ys[k]);
    bind[name] = r[k];
  }
  std::vector<Value> wrt;
  for (int i : check) wrt.push_back(xs[i]);
  auto grads = Gradients(b, used_ys, seeds, wrt);
  if (!grads.ok()) return ::testing::AssertionFailure() << "gradients: " << grads.status().message();
  // One value may be the gradient of several inputs (add passes dy to both):
  // it is marked as an output once and read under that name.
  std::vector<std::string> grad_name(grads->size());
  std::map<int, std::string> marked;
  for (size_t j = 0; j < grads->size(); ++j) {
    const Value& gv = (*grads)[j];
    if (!gv.valid()) return ::testing::AssertionFailure() << "no gradient built for input " << check[j];
    auto it = marked.find(gv.id);
    if (it == marked.end()) {
      it = marked.emplace(gv.id, absl::StrCat("g", j)).first;
      b.MarkOutput(gv, it->second);
    }
    grad_name[j] = it->second;
  }
  if (!b.ok()) return ::testing::AssertionFailure() << "building: " << b.status().message();
  auto exec = Executor::Create(g, {Device::CPU(), {}, true, false});
  if (!exec.ok()) return ::testing::AssertionFailure() << "executor: " << exec.status().message();
  auto got = (*exec)->RunNamed(bind);
  if (!got.ok()) return ::testing::AssertionFailure() << "backward run: " << got.status().message();

  std::mt19937_64 rng(7);
  for (size_t j = 0; j < check.size(); ++j) {
    const int i = check[j];
    std::vector<double> analytic = ToDoubles(got->at(grad_name[j]));
    const int64_t n = inputs[i].numel();
    std::vector<int64_t> points;
    if (n <= max_points) {
      for (int64_t p = 0; p < n; ++p) points.push_back(p);
    } else {
      std::uniform_int_distribution<int64_t> dist(0, n - 1);
      for (int p = 0; p < max_points; ++p) points.push_back(dist(rng));
    }
    for (int64_t p : points) {
      std::vector<Tensor> plus = inputs, minus = inputs;
      plus[i] = CastTo(inputs[i], inputs[i].dtype());
      minus[i] = CastTo(inputs[i], inputs[i].dtype());
      const double x = plus[i].data<double>()[p];
      const double h = 1e-6 * std::max(1.0, std::fabs(x));
      plus[i].data<double>()[p] = x + h;
      minus[i].data<double>()[p] = x - h;
      auto lp = loss(plus), lm = loss(minus);
      if (!lp.ok() || !lm.ok()) return ::testing::AssertionFailure() << "finite difference run failed";
      const double numeric = (*lp - *lm) / (2 * h);
      const double a = analytic[p];
      if (std::isnan(a) || std::fabs(a - numeric) > tol * std::max(1.0, std::fabs(numeric))) {
        return ::testing::AssertionFailure() << op << ": d/d input " << i << " at element " << p << ": autodiff "
                                             << a << ", finite difference " << numeric;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

double DefaultRtol(DType dtype) {
  switch (dtype) {
    case DType::f32: return 1e-5;
    case DType::f16: return 5e-3;
    case DType::bf16: return 2e-2;
    default: return 1e-12;
  }
}
// The same bound for outputs near zero, as a fraction of the output's largest
// magnitude (ScaledAtol): a fixed absolute bound would let an all-zero output
// pass wherever the values are small (softmax of long rows, loss gradients).
double DefaultAtol(DType dtype) { return DefaultRtol(dtype); }

double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v)
    if (std::isfinite(x)) m = std::max(m, std::fabs(x));
  return m;
}

double ScaledAtol(const std::vector<double>& expected, double rel, DType dtype) {
  double tiny = 0;  // the smallest subnormal of the storage dtype
  switch (dtype) {
    case DType::f16: tiny = std::ldexp(1.0, -24); break;
    case DType::bf16: tiny = std::ldexp(1.0, -133); break;
    case DType::f32: tiny = std::ldexp(1.0, -149); break;
    default: tiny = std::ldexp(1.0, -1074); break;
  }
  return std::max(rel * MaxAbs(expected), 2 * tiny);
}

namespace {
std::mutex g_threads_mu;
std::set<std::thread::id>* g_threads = nullptr;
void RecordThread(int64_t, int64_t) {
  {
    std::lock_guard<std::mutex> lock(g_threads_mu);
    if (g_threads) g_threads->insert(std::this_thread::get_id());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
}
}  // namespace

int ThreadsUsedBy(const std::function<void()>& fn) {
  std::set<std::thread::id> seen;
  {
    std::lock_guard<std::mutex> lock(g_threads_mu);
    g_threads = &seen;
  }
  ParallelForObserver prev = SetParallelForObserver(RecordThread);
  fn();
  SetParallelForObserver(prev);
  std::lock_guard<std::mutex> lock(g_threads_mu);
  g_threads = nullptr;
  return static_cast<int>(seen.size());
}

Status GpuAvailable() { return CheckDeviceAvailable(Device::CUDA(0)); }

bool GpuRequired() {
  const char* v = std::getenv("CF_REQUIRE_GPU");
  return v != nullptr && v[0] != '\0' && std::string(v) != "0";
}

::testing::AssertionResult MatchesCpuReference(absl::string_view op, const std::vector<Tensor>& inputs,
                                               const Attrs& attrs, DType dtype, const KernelUnderTest& run,
                                               double rtol, double atol) {
  if (rtol < 0) rtol = DefaultRtol(dtype);
  std::vector<Tensor> cpu_in, test_in;
  for (const Tensor& t : inputs) {
    if (IsFloating(t.dtype())) {
      Tensor rounded = CastTo(t, dtype);  // both sides see the same values
      cpu_in.push_back(CastTo(rounded, DType::f32));
      test_in.push_back(rounded);
    } else {
      cpu_in.push_back(t);
      test_in.push_back(t);
    }
  }
  auto want = RunOp(op, cpu_in, attrs, Device::CPU());
  if (!want.ok()) return ::testing::AssertionFailure() << "cpu: " << want.status().message();
  auto got = run(test_in);
  if (!got.ok()) return ::testing::AssertionFailure() << "under test: " << got.status().message();
  if (want->size() != got->size())
    return ::testing::AssertionFailure() << op << ": " << got->size() << " outputs, expected " << want->size();
  for (size_t k = 0; k < want->size(); ++k) {
    const Tensor &g = (*got)[k], &w = (*want)[k];
    if (g.shape() != w.shape())
      return ::testing::AssertionFailure() << op << " output " << k << " has shape " << g.shape().ToString()
                                           << ", expected " << w.shape().ToString();
    const std::vector<double> wv = ToDoubles(w);
    const double a = atol < 0 ? ScaledAtol(wv, DefaultAtol(dtype), dtype) : atol;
    auto r = AllClose(ToDoubles(g), wv, rtol, a);
    if (!r) return ::testing::AssertionFailure() << op << " output " << k << " (" << DTypeName(dtype) << "): " << r.message();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult CudaMatchesCpu(absl::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs,
                                          DType dtype, double rtol, double atol) {
  auto on_cuda = [&](const std::vector<Tensor>& in) -> StatusOr<std::vector<Tensor>> {
    std::vector<Tensor> dev;
    for (const Tensor& t : in) {
      CF_ASSIGN_OR_RETURN(Tensor d, t.To(Device::CUDA(0)));
      dev.push_back(std::move(d));
    }
    return RunOp(op, dev, attrs, Device::CUDA(0));
  };
  return MatchesCpuReference(op, inputs, attrs, dtype, on_cuda, rtol, atol);
}

}  // namespace cf::testing
