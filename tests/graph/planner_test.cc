// Memory planner: exact arenas on hand-made graphs (chains, diamonds, fan-out,
// in-place, views), VerifyPlan catching broken plans, and randomly generated
// DAGs (plan verified, arena within 5% of the lower bound).
//
// The graphs use test-only ops registered here, so these tests depend on no
// op family: "test_mix" (any inputs, output type from attributes),
// "test_inplace" (inplace_ok, output type of input 0) and "test_view"
// (view_of_input0, a reshape).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <cstdio>
#include <random>

#include "graph/builder.h"
#include "graph/planner.h"

namespace cf {
namespace {


OpDef TestMixDef() {
  OpDef d;
  d.name = "test_mix";
  d.min_inputs = 0;
  d.max_inputs = -1;
  d.infer = [](const OpCall& c) -> StatusOr<std::vector<TensorType>> {
    CF_ASSIGN_OR_RETURN(std::vector<int64_t> dims, c.attrs.RequireInts("shape"));
    std::vector<TensorType> outs(c.attrs.Int("outputs", 1), TensorType{Shape(dims), c.attrs.Type("dtype", DType::u8)});
    return outs;
  };
  d.doc = "test only: an output of the shape and dtype given by attributes";
  return d;
}

OpDef TestInPlaceDef() {
  OpDef d;
  d.name = "test_inplace";
  d.min_inputs = 1;
  d.max_inputs = -1;
  d.inplace_ok = true;
  d.infer = [](const OpCall& c) -> StatusOr<std::vector<TensorType>> {
    return std::vector<TensorType>{TensorType{c.inputs[0].shape, c.attrs.Type("dtype", c.inputs[0].dtype)}};
  };
  d.doc = "test only: an elementwise op that may overwrite input 0 (attr dtype may change the output type)";
  return d;
}

OpDef TestViewDef() {
  OpDef d;
  d.name = "test_view";
  d.min_inputs = d.max_inputs = 1;
  d.view_of_input0 = true;
  d.infer = [](const OpCall& c) -> StatusOr<std::vector<TensorType>> {
    CF_ASSIGN_OR_RETURN(std::vector<int64_t> dims, c.attrs.RequireInts("shape"));
    Shape s(dims);
    CF_CHECK_ARG(s.numel() == c.inputs[0].shape.numel(), "element count changes");
    return std::vector<TensorType>{TensorType{s, c.inputs[0].dtype}};
  };
  d.doc = "test only: a reshape view";
  return d;
}

CF_REGISTER_OP(TestMixDef());
CF_REGISTER_OP(TestInPlaceDef());
CF_REGISTER_OP(TestViewDef());

// An output of `bytes` bytes (u8) computed from `ins`.
Value Mix(Builder& b, std::vector<Value> ins, int64_t bytes) {
  return b.Op1("test_mix", std::move(ins), Attrs{{"shape", std::vector<int64_t>{bytes}}});
}
Value InPlace(Builder& b, std::vector<Value> ins) { return b.Op1("test_inplace", std::move(ins)); }
Value View(Builder& b, Value x, std::vector<int64_t> dims) {
  return b.Op1("test_view", {x}, Attrs{{"shape", std::move(dims)}});
}

PlanOptions Bytes1() {
  PlanOptions o;
  o.alignment = 1;
  return o;
}

MemoryPlan PlanOk(const Graph& g, const PlanOptions& o = Bytes1()) {
  auto plan = PlanMemory(g, o);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return {};
  Status s = VerifyPlan(g, *plan);
  EXPECT_TRUE(s.ok()) << s << "\n" << g.ToText();
  return *plan;
}

TEST(Planner, ChainReusesMemory) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{16}, DType::u8);
  Value a = Mix(b, {x}, 100);  // node 0, live [0, 1]
  Value c1 = Mix(b, {a}, 200);  // node 1, [1, 2]
  Value c2 = Mix(b, {c1}, 300);  // node 2, [2, 3]
  Value d = Mix(b, {c2}, 50);   // node 3, [3, 4]
  b.MarkOutput(Mix(b, {d}, 10), "y");
  ASSERT_TRUE(b.ok()) << b.status();
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.lower_bound_bytes, 500);  // node 2: 200 + 300
  EXPECT_EQ(p.arena_bytes, 500);
  EXPECT_EQ(p.no_reuse_bytes, 650);
  EXPECT_EQ(p.io_bytes, 16 + 10);
  EXPECT_EQ(p.num_buffers, 4);
  EXPECT_EQ(p.placement[x.id], Placement::kNone);
  EXPECT_EQ(p.offset[x.id], -1);
  EXPECT_EQ(p.first_use[c1.id], 1);
  EXPECT_EQ(p.last_use[c1.id], 2);
  EXPECT_FALSE(p.strategy.empty());
}

TEST(Planner, Alignment) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{16}, DType::u8);
  Value a = Mix(b, {x}, 100);
  Value c = Mix(b, {a}, 300);
  b.MarkOutput(Mix(b, {c}, 10), "y");
  PlanOptions o;  // 256-byte alignment: 100 -> 256, 300 -> 512
  MemoryPlan p = PlanOk(g, o);
  EXPECT_EQ(p.lower_bound_bytes, 768);
  EXPECT_EQ(p.arena_bytes, 768);
  EXPECT_EQ(p.offset[a.id] % 256, 0);
  EXPECT_EQ(p.offset[c.id] % 256, 0);
}

TEST(Planner, Diamond) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 100);      // [0, 2]
  Value l = Mix(b, {a}, 100);      // [1, 3]
  Value r = Mix(b, {a}, 100);      // [2, 3]
  Value j = Mix(b, {l, r}, 100);   // [3, 4]
  b.MarkOutput(Mix(b, {j}, 4), "y");
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.lower_bound_bytes, 300);
  EXPECT_EQ(p.arena_bytes, 300);
  // j reuses a's bytes (a died at node 2).
  EXPECT_EQ(p.offset[j.id], p.offset[a.id]);
}

TEST(Planner, FanOut) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 400);  // read by nodes 1..3: [0, 3]
  Value b1 = Mix(b, {a}, 100);
  Value b2 = Mix(b, {a}, 100);
  Value b3 = Mix(b, {a}, 100);
  Value s = Mix(b, {b1, b2, b3}, 50);  // node 4
  b.MarkOutput(Mix(b, {s}, 4), "y");
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.lower_bound_bytes, 700);
  EXPECT_EQ(p.arena_bytes, 700);
}

TEST(Planner, DeadValueStillGetsMemory) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value dead = Mix(b, {x}, 64);  // never read: live at its producer only
  Value y = Mix(b, {x}, 32);
  b.MarkOutput(y, "y");
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.placement[dead.id], Placement::kArena);
  EXPECT_EQ(p.first_use[dead.id], 0);
  EXPECT_EQ(p.last_use[dead.id], 0);
  EXPECT_EQ(p.arena_bytes, 64);
}

TEST(Planner, ZeroSizeValues) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value e = Mix(b, {x}, 0);
  Value a = Mix(b, {e}, 64);
  b.MarkOutput(Mix(b, {a, e}, 4), "y");
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.arena_bytes, 64);
  EXPECT_EQ(p.offset[e.id], 0);
}

TEST(Planner, MultiOutputNode) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  std::vector<Value> two = b.Op("test_mix", {x}, Attrs{{"shape", std::vector<int64_t>{100}}, {"outputs", int64_t{2}}});
  ASSERT_EQ(two.size(), 2u);
  Value s = Mix(b, {two[0], two[1]}, 100);
  b.MarkOutput(Mix(b, {s}, 4), "y");
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.arena_bytes, 300);
  EXPECT_NE(p.offset[two[0].id], p.offset[two[1].id]);
}

TEST(Planner, InPlaceChainSharesOneBuffer) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 256);
  Value i1 = InPlace(b, {a});      // a dies here: same bytes
  Value i2 = InPlace(b, {i1, x});  // i1 dies here
  b.MarkOutput(Mix(b, {i2}, 4), "y");
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.arena_bytes, 256);
  EXPECT_EQ(p.num_inplace, 2);
  EXPECT_EQ(p.num_buffers, 1);
  EXPECT_EQ(p.placement[i1.id], Placement::kInPlace);
  EXPECT_EQ(p.placement[i2.id], Placement::kInPlace);
  EXPECT_EQ(p.alias_of[i1.id], -1);  // alias_of is for views only
  EXPECT_EQ(p.offset[i1.id], p.offset[a.id]);
  EXPECT_EQ(p.offset[i2.id], p.offset[a.id]);
  EXPECT_EQ(p.no_reuse_bytes, 768);

  PlanOptions off = Bytes1();
  off.allow_inplace = false;
  MemoryPlan q = PlanOk(g, off);
  EXPECT_EQ(q.num_inplace, 0);
  EXPECT_EQ(q.arena_bytes, 512);
}

TEST(Planner, NoInPlaceWhenInputLivesOn) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 256);
  Value i = InPlace(b, {a});
  Value s = Mix(b, {a, i}, 16);  // a is read after the in-place op
  b.MarkOutput(s, "y");
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.placement[i.id], Placement::kArena);
  EXPECT_EQ(p.arena_bytes, 512);  // s is a graph output: not in the arena
}

TEST(Planner, NoInPlaceOnInputsOrDifferentSizes) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{64}, DType::f32);
  Value i = InPlace(b, {x});  // x is a graph input: never overwritten
  Value c = b.Op1("test_inplace", {i}, Attrs{{"dtype", DType::f16}});  // 256 B -> 128 B
  b.MarkOutput(Mix(b, {c}, 4), "y");
  ASSERT_TRUE(b.ok()) << b.status();
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.placement[i.id], Placement::kArena);
  EXPECT_EQ(p.placement[c.id], Placement::kArena);
  EXPECT_EQ(p.arena_bytes, 256 + 128);
}

TEST(Planner, NoInPlaceWhenAnotherInputIsAViewOfTheSameBytes) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 64);
  Value v = View(b, a, {8, 8});
  Value va = View(b, a, {64});
  Value i = InPlace(b, {va, View(b, v, {64})});
  b.MarkOutput(Mix(b, {i}, 4), "y");
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.placement[i.id], Placement::kArena);
  EXPECT_EQ(p.arena_bytes, 128);
}

TEST(Planner, ViewChainExtendsLifetime) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 256);           // node 0
  Value v1 = View(b, a, {16, 16});      // node 1
  Value v2 = View(b, v1, {4, 64});      // node 2
  Value t = Mix(b, {x}, 512);           // node 3: a is still needed through v2
  b.MarkOutput(Mix(b, {v2, t}, 4), "y");  // node 4
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.placement[v1.id], Placement::kView);
  EXPECT_EQ(p.placement[v2.id], Placement::kView);
  EXPECT_EQ(p.alias_of[v1.id], a.id);
  EXPECT_EQ(p.alias_of[v2.id], v1.id);
  EXPECT_EQ(p.offset[v1.id], p.offset[a.id]);
  EXPECT_EQ(p.offset[v2.id], p.offset[a.id]);
  EXPECT_EQ(p.last_use[a.id], 1);  // a's own reads; its buffer lives to node 4
  EXPECT_EQ(p.num_views, 2);
  EXPECT_EQ(p.num_buffers, 2);
  EXPECT_EQ(p.lower_bound_bytes, 768);
  EXPECT_EQ(p.arena_bytes, 768);
  EXPECT_EQ(p.no_reuse_bytes, 768);

  // Breaking the plan: put t over a's bytes. VerifyPlan must see that a's
  // buffer is live (through v2) when t is written.
  MemoryPlan bad = p;
  bad.offset[t.id] = p.offset[a.id];
  bad.arena_bytes = 4096;
  Status s = VerifyPlan(g, bad);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("overlap"), std::string::npos) << s;

  PlanOptions novw = Bytes1();
  novw.allow_views = false;
  MemoryPlan q = PlanOk(g, novw);
  EXPECT_EQ(q.num_views, 0);
  EXPECT_EQ(q.placement[v2.id], Placement::kArena);
}

TEST(Planner, ViewsOfLeavesAreBound) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{64}, DType::u8);
  Value w = b.Parameter("w", Shape{64}, DType::u8);
  Value vx = View(b, x, {8, 8});
  Value vvx = View(b, vx, {4, 16});
  Value vw = View(b, w, {8, 8});
  Value s = Mix(b, {vvx, vw}, 64);
  Value vs = View(b, s, {8, 8});  // a view that is a graph output: not aliased
  b.MarkOutput(vs, "y");
  b.MarkOutput(View(b, vs, {64}), "y_flat");  // a view of a graph output: bound to it
  ASSERT_TRUE(b.ok()) << b.status();
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.placement[vx.id], Placement::kBoundView);
  EXPECT_EQ(p.alias_of[vx.id], x.id);
  EXPECT_EQ(p.offset[vx.id], -1);
  EXPECT_EQ(p.placement[vvx.id], Placement::kBoundView);
  EXPECT_EQ(p.alias_of[vvx.id], vx.id);
  EXPECT_EQ(p.placement[vw.id], Placement::kBoundView);
  EXPECT_EQ(p.alias_of[vw.id], w.id);
  EXPECT_EQ(p.placement[vs.id], Placement::kNone);
  EXPECT_EQ(p.alias_of[vs.id], -1);
  EXPECT_EQ(p.placement[s.id], Placement::kArena);
  EXPECT_EQ(p.arena_bytes, 64);
  EXPECT_EQ(p.parameter_bytes, 64);
}

TEST(Planner, InPlaceThroughAView) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 64);
  Value v = View(b, a, {8, 8});
  Value i = InPlace(b, {v});  // a dies here (read only through v)
  b.MarkOutput(Mix(b, {i}, 4), "y");
  MemoryPlan p = PlanOk(g);
  EXPECT_EQ(p.placement[i.id], Placement::kInPlace);
  EXPECT_EQ(p.offset[i.id], p.offset[a.id]);
  EXPECT_EQ(p.arena_bytes, 64);

  // With a read of `a` after the in-place op, it must not happen.
  Graph g2;
  Builder b2(&g2);
  Value x2 = b2.Input("x", Shape{8}, DType::u8);
  Value a2 = Mix(b2, {x2}, 64);
  Value i2 = InPlace(b2, {View(b2, a2, {8, 8})});
  b2.MarkOutput(Mix(b2, {i2, a2}, 4), "y");
  MemoryPlan p2 = PlanOk(g2);
  EXPECT_EQ(p2.placement[i2.id], Placement::kArena);
  EXPECT_EQ(p2.arena_bytes, 128);
}

TEST(Planner, NoReuseOption) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 100);
  Value c = Mix(b, {a}, 100);
  b.MarkOutput(Mix(b, {Mix(b, {c}, 100)}, 4), "y");
  PlanOptions o = Bytes1();
  o.reuse = false;
  MemoryPlan p = PlanOk(g, o);
  EXPECT_EQ(p.arena_bytes, 300);
  EXPECT_EQ(p.strategy, "no-reuse");
}

TEST(VerifyPlan, CatchesBrokenPlans) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 100);
  Value c = Mix(b, {a}, 100);
  Value i = InPlace(b, {c});
  b.MarkOutput(Mix(b, {i, x}, 4), "y");
  MemoryPlan p = PlanOk(g);
  ASSERT_EQ(p.placement[i.id], Placement::kInPlace);

  MemoryPlan overlap = p;  // a and c are live together at node 1
  overlap.offset[c.id] = p.offset[a.id] + 50;
  overlap.offset[i.id] = overlap.offset[c.id];
  overlap.arena_bytes = 300;
  EXPECT_FALSE(VerifyPlan(g, overlap).ok());

  MemoryPlan outside = p;
  outside.arena_bytes = 150;
  Status s = VerifyPlan(g, outside);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("arena"), std::string::npos) << s;

  MemoryPlan unplanned = p;
  unplanned.placement[a.id] = Placement::kNone;
  unplanned.offset[a.id] = -1;
  EXPECT_FALSE(VerifyPlan(g, unplanned).ok());

  MemoryPlan input_in_arena = p;
  input_in_arena.placement[x.id] = Placement::kArena;
  input_in_arena.offset[x.id] = 0;
  EXPECT_FALSE(VerifyPlan(g, input_in_arena).ok());

  MemoryPlan fake_inplace = p;  // a -> c is not an in-place op
  fake_inplace.placement[c.id] = Placement::kInPlace;
  fake_inplace.offset[c.id] = p.offset[a.id];
  fake_inplace.offset[i.id] = p.offset[a.id];
  EXPECT_FALSE(VerifyPlan(g, fake_inplace).ok());

  MemoryPlan wrong = p;  // in-place output at another offset
  wrong.offset[i.id] = p.offset[c.id] == 0 ? 100 : 0;
  EXPECT_FALSE(VerifyPlan(g, wrong).ok());
}

TEST(VerifyPlan, CatchesInPlaceOverAValueStillRead) {
  // Build a graph where the planner does not go in place, then force it.
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8}, DType::u8);
  Value a = Mix(b, {x}, 64);
  Value i = InPlace(b, {a});
  b.MarkOutput(Mix(b, {i, a}, 4), "y");
  MemoryPlan p = PlanOk(g);
  ASSERT_EQ(p.placement[i.id], Placement::kArena);
  p.placement[i.id] = Placement::kInPlace;
  p.offset[i.id] = p.offset[a.id];
  Status s = VerifyPlan(g, p);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("in place"), std::string::npos) << s;
}

// ---- Random DAGs -------------------------------------------------------------------

// A random DAG of `nodes` nodes: mostly test_mix with 1..4 inputs drawn from
// recent values (and now and then from any earlier value, which makes long
// lifetimes), some in-place ops and views, sizes log-uniform from 64 B to
// 4 MB. Sizes spread over five decades make it harder than a network's
// graph, where a few activation shapes repeat.
void BuildRandomDag(Graph* g, uint64_t seed, int nodes) {
  std::mt19937_64 rng(seed);
  Builder b(g);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  auto size = [&]() {
    double l = std::uniform_real_distribution<double>(std::log(64.0), std::log(4.0 * 1024 * 1024))(rng);
    int64_t s = static_cast<int64_t>(std::exp(l));
    return chance(0.3) ? int64_t{1} << (63 - __builtin_clzll(static_cast<uint64_t>(s))) : s;
  };
  std::vector<Value> pool;
  const int inputs = uniform(1, 3);
  for (int i = 0; i < inputs; ++i) pool.push_back(b.Input(absl::StrCat("in", i), Shape{size()}, DType::u8));
  const int window = uniform(3, 12);
  auto pick = [&]() {
    if (chance(0.1)) return pool[uniform(0, static_cast<int>(pool.size()) - 1)];
    int lo = std::max(0, static_cast<int>(pool.size()) - window);
    return pool[uniform(lo, static_cast<int>(pool.size()) - 1)];
  };
  for (int n = 0; n < nodes; ++n) {
    double r = std::uniform_real_distribution<double>(0, 1)(rng);
    Value v;
    if (r < 0.15) {
      std::vector<Value> ins{pool.back()};
      if (chance(0.5)) ins.push_back(pick());
      v = InPlace(b, ins);
    } else if (r < 0.25) {
      Value in = chance(0.7) ? pool.back() : pick();
      v = View(b, in, {in.shape().numel()});
    } else if (r < 0.28) {
      v = Mix(b, {}, size());
    } else {
      std::vector<Value> ins;
      const int k = uniform(1, 4);
      for (int j = 0; j < k; ++j) ins.push_back(pick());
      v = Mix(b, ins, size());
    }
    pool.push_back(v);
    if (chance(0.02)) b.MarkOutput(v, absl::StrCat("out", n));
  }
  if (!g->value(pool.back().id).is_output) b.MarkOutput(pool.back(), "final");
  EXPECT_TRUE(b.ok()) << b.status();
}

// A random network-like DAG: a U-Net of `levels` resolution levels (each
// level's activations a quarter of the bytes of the one above, times a
// channel factor), blocks of 3..8 ops (matmul-like mixes, 4x expansions,
// in-place activations, views, small statistics), skip connections from each
// down block to its up block, and with `backward` a mirrored backward pass
// that reads every forward activation again (long, nested lifetimes).
void BuildRandomNet(Graph* g, uint64_t seed, int blocks_per_level, bool backward) {
  std::mt19937_64 rng(seed);
  Builder b(g);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  const int levels = uniform(2, 4);
  const int64_t top = int64_t{1} << uniform(14, 20);
  std::vector<int64_t> level_bytes;
  for (int l = 0; l < levels; ++l) level_bytes.push_back(std::max<int64_t>(top >> (2 * l), 256) * (l == 0 ? 1 : 2));
  std::vector<Value> forward;  // every forward activation, for the backward pass
  Value h = b.Input("x", Shape{level_bytes[0]}, DType::u8);
  auto block = [&](Value x, int64_t bytes) {
    const int ops = uniform(3, 8);
    std::vector<Value> local{x};
    for (int i = 0; i < ops; ++i) {
      const double r = std::uniform_real_distribution<double>(0, 1)(rng);
      Value last = local.back();
      Value v;
      if (r < 0.25) {
        v = InPlace(b, {last});
      } else if (r < 0.35) {
        v = View(b, last, {last.shape().numel()});
      } else if (r < 0.45) {
        Value stats = Mix(b, {last}, std::max<int64_t>(bytes / 64, 64));
        v = Mix(b, {last, stats}, bytes);
      } else if (r < 0.6) {
        Value wide = Mix(b, {last}, 4 * bytes);
        v = Mix(b, {wide}, bytes);
      } else {
        v = Mix(b, {last, local[uniform(0, static_cast<int>(local.size()) - 1)]}, bytes);
      }
      local.push_back(v);
    }
    forward.insert(forward.end(), local.begin() + 1, local.end());
    return Mix(b, {local.back(), x}, bytes);  // the residual
  };
  std::vector<Value> skips;
  for (int l = 0; l < levels; ++l) {
    if (l > 0) h = Mix(b, {h}, level_bytes[l]);  // downsample
    for (int k = 0; k < blocks_per_level; ++k) {
      h = block(h, level_bytes[l]);
      skips.push_back(h);
    }
  }
  h = block(h, level_bytes[levels - 1]);
  for (int l = levels - 1; l >= 0; --l) {
    for (int k = 0; k < blocks_per_level; ++k) {
      Value skip = skips.back();
      skips.pop_back();
      h = block(Mix(b, {h, skip}, level_bytes[l]), level_bytes[l]);
    }
    if (l > 0) h = Mix(b, {h}, level_bytes[l - 1]);  // upsample
  }
  if (!backward) {
    b.MarkOutput(h, "y");
    EXPECT_TRUE(b.ok()) << b.status();
    return;
  }
  Value grad = Mix(b, {h}, h.shape().numel());
  for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
    const int64_t bytes = it->shape().numel();
    grad = chance(0.3) ? InPlace(b, {Mix(b, {grad, *it}, bytes)}) : Mix(b, {grad, *it}, bytes);
  }
  b.MarkOutput(grad, "dx");
  EXPECT_TRUE(b.ok()) << b.status();
}

struct RatioStats {
  double worst = 1.0, sum = 0, slowest_s = 0;
  int graphs = 0;
  uint64_t worst_seed = 0;
  std::map<std::string, int> wins;
  void Add(const MemoryPlan& p, uint64_t seed, double seconds) {
    ++graphs;
    slowest_s = std::max(slowest_s, seconds);
    sum += p.ratio();
    wins[p.strategy]++;
    if (p.ratio() > worst) {
      worst = p.ratio();
      worst_seed = seed;
    }
  }
  void Print(const char* what) const {
    std::printf("%s: %d graphs, worst arena / lower bound %.4f (seed %llu), mean %.4f, slowest plan %.3f s; wins:",
                what, graphs, worst, static_cast<unsigned long long>(worst_seed), sum / graphs, slowest_s);
    for (const auto& [k, n] : wins) std::printf(" %s %d", k.c_str(), n);
    std::printf("\n");
  }
};

MemoryPlan PlanAndCheck(const Graph& g, uint64_t seed, double* seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  auto plan = PlanMemory(g);
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return {};
  Status s = VerifyPlan(g, *plan);
  EXPECT_TRUE(s.ok()) << "seed " << seed << ": " << s;
  EXPECT_GE(plan->arena_bytes, plan->lower_bound_bytes);
  EXPECT_LE(plan->arena_bytes, plan->no_reuse_bytes);
  return *plan;
}

TEST(Planner, RandomNetworksNearLowerBound) {
  RatioStats inference, training;
  for (int i = 0; i < 150; ++i) {
    const uint64_t seed = 5000 + i;
    Graph g;
    BuildRandomNet(&g, seed, 1 + i % 3, /*backward=*/false);
    double t = 0;
    MemoryPlan p = PlanAndCheck(g, seed, &t);
    EXPECT_LE(p.ratio(), 1.05) << "seed " << seed << ": " << p.ToString();
    inference.Add(p, seed, t);
    Graph gt;
    BuildRandomNet(&gt, seed, 1 + i % 3, /*backward=*/true);
    MemoryPlan pt = PlanAndCheck(gt, seed, &t);
    EXPECT_LE(pt.ratio(), 1.05) << "seed " << seed << ": " << pt.ToString();
    training.Add(pt, seed, t);
  }
  inference.Print("random networks (forward)");
  training.Print("random networks (forward + backward)");
}

TEST(Planner, RandomDagsNearLowerBound) {
  RatioStats stats;
  for (int i = 0; i < 120; ++i) {
    const uint64_t seed = 1000 + i;
    Graph g;
    BuildRandomDag(&g, seed, 20 + static_cast<int>(seed * 7919 % 400));
    double t = 0;
    MemoryPlan p = PlanAndCheck(g, seed, &t);
    EXPECT_LE(p.ratio(), 1.05) << "seed " << seed << ": " << p.ToString();
    stats.Add(p, seed, t);
  }
  stats.Print("random DAGs (sizes 64 B .. 4 MB)");
}

TEST(Planner, LargeGraphIsFast) {
  for (int kind = 0; kind < 2; ++kind) {
    Graph g;
    if (kind == 0) {
      BuildRandomDag(&g, 7, 50000);
    } else {
      for (int blocks = 200; g.num_values() < 50000; blocks *= 2) {
        g = Graph();
        BuildRandomNet(&g, 7, blocks, /*backward=*/true);
      }
    }
    ASSERT_GE(g.num_values(), 50000);
    auto t0 = std::chrono::steady_clock::now();
    auto plan = PlanMemory(g);
    ASSERT_TRUE(plan.ok()) << plan.status();
    auto t1 = std::chrono::steady_clock::now();
    Status s = VerifyPlan(g, *plan);
    auto t2 = std::chrono::steady_clock::now();
    ASSERT_TRUE(s.ok()) << s;
    const double plan_s = std::chrono::duration<double>(t1 - t0).count();
    const double verify_s = std::chrono::duration<double>(t2 - t1).count();
    std::printf("%s, %d values: plan %.3f s, verify %.3f s; %s\n",
                kind == 0 ? "random DAG" : "random network + backward", g.num_values(), plan_s, verify_s,
                plan->ToString().c_str());
    for (const auto& [k, v] : plan->tried) std::printf("  tried %s: %lld\n", k.c_str(), static_cast<long long>(v));
    EXPECT_LT(plan_s, 20.0);
    EXPECT_LT(verify_s, 5.0);
  }
}

}  // namespace
}  // namespace cf
