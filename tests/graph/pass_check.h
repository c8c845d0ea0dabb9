// Checks shared by the tests of the graph passes (passes_epilogue_test.cc,
// passes_elementwise_test.cc, passes_cse_test.cc): run a graph and its
// rewrite on the same random values, compare every output, and compare
// per-scope accounting in every FLOP category and pass; and the tiny real
// models they all rewrite.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>

#include "graph/accounting.h"
#include "graph/executor.h"
#include "graph/passes/pass.h"
#include "nn/pixart_transformer.h"
#include "nn/unet2d_condition.h"
#include "tests/support/model_golden.h"
#include "tests/support/op_harness.h"

namespace cf::testing {

using GraphPass = std::function<StatusOr<Graph>(const Graph&, PassReport*)>;

// Parameters without data: uniform, scaled by 1/sqrt(fan-in) so deep random
// nets stay finite; inputs uniform in [-1, 1].
inline std::map<std::string, Tensor> RandomParametersOf(const Graph& g, uint64_t seed) {
  std::map<std::string, Tensor> out;
  for (int id : g.Parameters()) {
    const ValueInfo& v = g.value(id);
    if (v.data.defined()) continue;
    const Shape& s = v.type.shape;
    const double fan_in = s.rank() >= 2 ? static_cast<double>(s.numel() / std::max<int64_t>(1, s[0])) : 1.0;
    out[v.name] = RandomTensor(s, v.type.dtype, seed++, s.rank() >= 2 ? -1.0 / std::sqrt(fan_in) : -0.5,
                               s.rank() >= 2 ? 1.0 / std::sqrt(fan_in) : 0.5);
  }
  return out;
}
inline std::map<std::string, Tensor> RandomInputsOf(const Graph& g, uint64_t seed) {
  std::map<std::string, Tensor> out;
  for (int id : g.Inputs()) out[g.value(id).name] = RandomTensor(g.value(id).type.shape, g.value(id).type.dtype, seed++);
  return out;
}

// Runs `g` through an executor with `passes`, poisoned; checks the planner
// bound (it holds after the passes too: docs/planner.md). The executor's pass
// report and node count go to `report` and `nodes` when given.
inline StatusOr<std::map<std::string, Tensor>> RunWithPasses(const Graph& g, const PassOptions& passes,
                                                             const std::map<std::string, Tensor>& params,
                                                             const std::map<std::string, Tensor>& inputs,
                                                             PassReport* report = nullptr, int* nodes = nullptr) {
  ExecutorOptions eo;
  eo.passes = passes;
  eo.poison = true;
  CF_ASSIGN_OR_RETURN(auto exec, Executor::Create(g, eo));
  for (const auto& [name, t] : params) CF_RETURN_IF_ERROR(exec->SetParameter(name, t));
  CF_ASSIGN_OR_RETURN(auto outs, exec->RunNamed(inputs));
  if (report != nullptr) *report = exec->pass_report();
  if (nodes != nullptr) *nodes = exec->graph().num_nodes();
  if (exec->plan().lower_bound_bytes > (int64_t{1} << 16) && exec->plan().ratio() > 1.05)
    return absl::InternalError(absl::StrCat("arena ", exec->plan().arena_bytes, " B > 1.05 x lower bound ",
                                            exec->plan().lower_bound_bytes, " B"));
  return outs;
}
// The same as it is (no executor passes).
inline StatusOr<std::map<std::string, Tensor>> RunAsIs(const Graph& g, const std::map<std::string, Tensor>& params,
                                                        const std::map<std::string, Tensor>& inputs) {
  return RunWithPasses(g, PassOptions::None(), params, inputs);
}

// Every scope keeps its FLOPs in every category and its parameters, in every
// pass; the total bytes do not grow.
inline void ExpectSameAccountingAs(const Graph& before, const Graph& after) {
  for (Pass pass : {Pass::kAll, Pass::kForward, Pass::kBackward, Pass::kUpdate}) {
    auto a = Account(before, {.pass = pass});
    auto b = Account(after, {.pass = pass});
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << " " << b.status();
    int scopes = 0;
    for (const ScopeCost& s : a->scopes()) {
      const ScopeCost* t = b->Find(s.path);
      if (s.cost.total_flops() == 0 && s.params == 0 && t == nullptr) continue;
      ASSERT_NE(t, nullptr) << "scope '" << s.path << "' is gone";
      EXPECT_EQ(s.cost.mac_flops, t->cost.mac_flops) << s.path;
      EXPECT_EQ(s.cost.bias_flops, t->cost.bias_flops) << s.path;
      EXPECT_EQ(s.cost.elementwise_flops, t->cost.elementwise_flops) << s.path;
      EXPECT_EQ(s.cost.transcendentals, t->cost.transcendentals) << s.path;
      EXPECT_EQ(s.params, t->params) << s.path;
      ++scopes;
    }
    EXPECT_GT(scopes, 0);
    EXPECT_LE(b->root().cost.bytes_read + b->root().cost.bytes_written,
              a->root().cost.bytes_read + a->root().cost.bytes_written);
  }
}

// `pass` on `g`: the rewrite Verify()s, runs to the same outputs within
// `tol` (relative to each output's largest value) and keeps the accounting.
// Returns the rewritten graph (and the report in `report`).
inline Graph ExpectPassKeepsResults(const Graph& g, const GraphPass& pass, double tol, PassReport* report = nullptr,
                                    uint64_t seed = 1) {
  PassReport local;
  PassReport& r = report ? *report : local;
  r.nodes_before = g.num_nodes();
  auto out = pass(g, &r);
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return Graph();
  r.nodes_after = out->num_nodes();
  EXPECT_TRUE(out->Verify().ok());
  ExpectSameAccountingAs(g, *out);
  const auto params = RandomParametersOf(g, seed);
  const auto inputs = RandomInputsOf(g, seed + 1000);
  auto want = RunAsIs(g, params, inputs);
  auto got = RunAsIs(*out, params, inputs);
  EXPECT_TRUE(want.ok()) << want.status();
  EXPECT_TRUE(got.ok()) << got.status();
  if (want.ok() && got.ok()) {
    EXPECT_EQ(want->size(), got->size());
    for (const auto& [name, t] : *want) {
      EXPECT_TRUE(got->count(name)) << name;
      if (!got->count(name)) continue;
      // RelativeError is infinite when `got` has a NaN.
      EXPECT_LE(RelativeError(ToDoubles(got->at(name)), ToDoubles(t)), tol) << name;
    }
  }
  return std::move(*out);
}

// How many nodes of `op` a graph has.
inline int CountOp(const Graph& g, const std::string& op) {
  return static_cast<int>(std::count_if(g.nodes().begin(), g.nodes().end(),
                                        [&](const Node& n) { return n.op->name == op; }));
}

// The tiny SD1.5 UNet (tests/data/unet/tiny_sd15) at 16x16, batch 2, 7 text
// tokens, with self-attention ("self") or another choice of
// ParseSelfAttentionChoice; its taps marked as outputs when `mark_taps` (so
// the passes cannot fuse past them).
inline StatusOr<Graph> TinyUNetGraph(const std::string& choice = "self", bool mark_taps = false) {
  CF_ASSIGN_OR_RETURN(auto config, UNet2DConditionConfig::Load(TestDataDir("unet/tiny_sd15") + "/unet"));
  Graph g;
  Builder b(&g);
  UNetBuildOptions o;
  if (choice != "self") {
    CF_ASSIGN_OR_RETURN(o.self_attention, ParseSelfAttentionChoice(choice));
  }
  CF_ASSIGN_OR_RETURN(UNetOutputs u,
                      BuildUNet2DConditionGraph(b, config, {.batch = 2, .height = 16, .width = 16, .tokens = 7}, o));
  if (mark_taps)
    for (const auto& [tap, v] : u.taps) b.MarkOutput(v, "tap." + tap);
  CF_RETURN_IF_ERROR(b.Finish().status());
  return g;
}
// The tiny PixArt-Sigma transformer (tests/data/pixart/tiny_sigma) at 8x8
// latent, batch 2, 6 text tokens.
inline StatusOr<Graph> TinyPixArtGraph() {
  CF_ASSIGN_OR_RETURN(auto config, PixArtTransformerConfig::Load(TestDataDir("pixart/tiny_sigma") + "/transformer"));
  Graph g;
  Builder b(&g);
  CF_RETURN_IF_ERROR(
      BuildPixArtTransformerGraph(b, config, {.batch = 2, .height = 8, .width = 8, .tokens = 6}).status());
  CF_RETURN_IF_ERROR(b.Finish().status());
  return g;
}

}  // namespace cf::testing
