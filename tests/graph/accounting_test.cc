// Accounting: scope-tree sums, parameter counts, filters (glob, regex, op,
// forward/backward), the highest-resolution rule, exports, the JSON writer,
// and the paper's Table 1 self-attention rows from real attention graphs.
#include "graph/accounting.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "graph/autodiff.h"
#include "graph/builder.h"
#include "ops/elementwise/elementwise.h"
#include "ops/matmul/matmul.h"
#include "ops/reduce/reduce.h"
#include "ops/shape/shape.h"

namespace cf {
namespace {

// "acct_op": output = input 0's type (or attr shape); cost from attributes.
OpDef AcctOpDef() {
  OpDef d;
  d.name = "acct_op";
  d.min_inputs = 0;
  d.max_inputs = -1;
  d.infer = [](const OpCall& c) -> StatusOr<std::vector<TensorType>> {
    if (c.attrs.Has("shape")) return std::vector<TensorType>{{Shape(c.attrs.Ints("shape")), DType::f32}};
    CF_CHECK_ARG(!c.inputs.empty(), "needs an input or a shape");
    return std::vector<TensorType>{c.inputs[0]};
  };
  d.cost = [](const OpCall& c, absl::Span<const TensorType> outs) {
    Cost k = IoBytes(c.inputs, outs);
    k.mac_flops = c.attrs.Int("mac", 0);
    k.bias_flops = c.attrs.Int("bias", 0);
    k.elementwise_flops = c.attrs.Int("ew", 0);
    k.transcendentals = c.attrs.Int("tr", 0);
    return k;
  };
  d.doc = "test only: a node with the cost given by attributes";
  return d;
}
CF_REGISTER_OP(AcctOpDef());

Value Op(Builder& b, std::vector<Value> in, int64_t mac, int64_t bias = 0, int64_t ew = 0, int64_t tr = 0) {
  return b.Op1("acct_op", std::move(in), Attrs{{"mac", mac}, {"bias", bias}, {"ew", ew}, {"tr", tr}});
}

// unet.down.0.attn1 (tokens 64), unet.down.0.ff, unet.mid.attn1 (tokens 16),
// unet.up.0.attn1 (tokens 64, more MACs), a top-level node, and parameters.
struct SmallNet {
  Graph g;
  Value x;
  SmallNet() {
    Builder b(&g);
    x = b.Input("x", Shape{2, 8, 8, 4}, DType::f32);
    Value h = x;
    {
      auto s = b.scope("unet");
      b.Parameter("scale", Shape{4}, DType::f32);
      {
        auto d = b.scope("down.0");
        {
          auto a = b.scope("attn1");
          b.Parameter("weight", Shape{4, 4}, DType::f32);
          h = Op(b, {h}, 100, 10, 1, 2);
          h = Op(b, {h}, 50);
        }
        {
          auto f = b.scope("ff");
          b.Parameter("weight", Shape{8, 4}, DType::f16);
          h = Op(b, {h}, 200, 20);
        }
      }
      Value low = b.Op1("acct_op", {h}, Attrs{{"shape", std::vector<int64_t>{2, 4, 4, 4}}});
      {
        auto m = b.scope("mid.attn1");
        low = Op(b, {low}, 1000);
      }
      {
        auto u = b.scope("up.0.attn1");
        h = Op(b, {h, low}, 300, 0, 7);
      }
    }
    h = Op(b, {h}, 1, 1, 1, 1);
    b.MarkOutput(h, "y");
    EXPECT_TRUE(b.ok()) << b.status();
  }
};

TEST(Accounting, ScopeTreeSums) {
  SmallNet net;
  auto r = Account(net.g);
  ASSERT_TRUE(r.ok()) << r.status();
  const ScopeCost& root = r->root();
  EXPECT_EQ(root.path, "");
  EXPECT_EQ(root.name, "(total)");
  EXPECT_EQ(root.nodes, 7);
  EXPECT_EQ(root.cost.mac_flops, 100 + 50 + 200 + 1000 + 300 + 1);
  EXPECT_EQ(root.cost.bias_flops, 10 + 20 + 1);
  EXPECT_EQ(root.cost.elementwise_flops, 1 + 7 + 1);
  EXPECT_EQ(root.cost.transcendentals, 2 + 1);
  EXPECT_EQ(root.cost.table1_flops(), 1651 + 31);
  EXPECT_EQ(root.self.mac_flops, 1);
  EXPECT_EQ(root.params, 4 + 16 + 32);
  EXPECT_EQ(root.param_bytes, 4 * 4 + 16 * 4 + 32 * 2);

  const ScopeCost* down = r->Find("unet.down");
  ASSERT_NE(down, nullptr);  // an intermediate level made from "down.0"
  EXPECT_EQ(down->cost.mac_flops, 350);
  EXPECT_EQ(down->nodes, 3);
  EXPECT_EQ(down->params, 48);
  EXPECT_EQ(down->self.mac_flops, 0);
  const ScopeCost* unet = r->Find("unet");
  ASSERT_NE(unet, nullptr);
  EXPECT_EQ(unet->cost.mac_flops, 1650);
  EXPECT_EQ(unet->self.mac_flops, 0);  // the downsample node has zero cost
  EXPECT_EQ(unet->nodes, 6);
  EXPECT_EQ(unet->depth, 1);
  EXPECT_EQ(r->Find("unet.down.0.attn1")->depth, 4);
  EXPECT_EQ(r->Find("unet.down.0.attn1")->name, "attn1");
  EXPECT_EQ(r->Find("nope"), nullptr);

  // Preorder: every scope after its parent; children listed in build order.
  const auto& sc = r->scopes();
  for (size_t i = 1; i < sc.size(); ++i) {
    ASSERT_GE(sc[i].parent, 0);
    EXPECT_LT(sc[i].parent, static_cast<int>(i));
    EXPECT_EQ(sc[sc[i].parent].depth + 1, sc[i].depth);
  }
  std::vector<std::string> top;
  for (int c : unet->children) top.push_back(sc[c].name);
  EXPECT_EQ(top, (std::vector<std::string>{"down", "mid", "up"}));

  // Each level's total is the sum of its subtree.
  for (const ScopeCost& s : sc) {
    Cost sum = s.self;
    for (int c : s.children) sum += sc[c].cost;
    EXPECT_EQ(sum.mac_flops, s.cost.mac_flops) << s.path;
    EXPECT_EQ(sum.bytes_read, s.cost.bytes_read) << s.path;
  }
}

TEST(Accounting, TokensAndHighestResolution) {
  SmallNet net;
  auto r = Account(net.g);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->Find("unet.down.0.attn1")->tokens, 64);
  EXPECT_EQ(r->Find("unet.mid.attn1")->tokens, 16);
  EXPECT_EQ(r->Find("unet.up.0.attn1")->tokens, 64);
  EXPECT_EQ(r->root().tokens, 64);

  std::vector<const ScopeCost*> attn = r->Match("*.attn1");
  ASSERT_EQ(attn.size(), 3u);
  EXPECT_EQ(attn[0]->path, "unet.down.0.attn1");
  auto best = r->HighestResolution("*.attn1");
  ASSERT_TRUE(best.ok());
  EXPECT_EQ((*best)->path, "unet.up.0.attn1");  // 64 tokens like down.0, more MACs
  EXPECT_EQ(r->HighestResolution("*.attn9").status().code(), absl::StatusCode::kNotFound);
}

TEST(Accounting, MatchAndSum) {
  SmallNet net;
  auto r = Account(net.g);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->Match("unet.*.attn1").size(), 3u);
  EXPECT_EQ(r->Match("unet.?.0*").size(), 0u);
  EXPECT_EQ(r->Match("unet.up*").size(), 3u);  // up, up.0, up.0.attn1
  auto re = r->MatchRegex(R"(unet\.(down|up)\.\d+\.attn1)");
  ASSERT_TRUE(re.ok());
  EXPECT_EQ(re->size(), 2u);
  EXPECT_FALSE(r->MatchRegex("(").ok());

  // Nested matches count once.
  ScopeCost all_up = r->Sum(r->Match("unet.up*"));
  EXPECT_EQ(all_up.cost.mac_flops, 300);
  EXPECT_EQ(all_up.nodes, 1);
  ScopeCost attn = r->Sum(r->Match("*.attn1"));
  EXPECT_EQ(attn.cost.mac_flops, 150 + 1000 + 300);
  EXPECT_EQ(attn.params, 16);
}

TEST(Accounting, OpAndPassFilters) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 3, 4}, DType::f32);
  Value y;
  {
    auto s = b.scope("block");
    y = Op(b, {x}, 10);
    {
      auto bw = b.backward_section();
      EXPECT_TRUE(b.building_backward());
      Op(b, {y}, 1000);
    }
    EXPECT_FALSE(b.building_backward());
    y = b.Op1("full", {}, Attrs{{"shape", std::vector<int64_t>{2}}, {"dtype", DType::f32}, {"value", 1.0}});
  }
  b.MarkOutput(y, "y");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(g.node(0).backward);
  EXPECT_TRUE(g.node(1).backward);

  AccountOptions fwd;
  fwd.pass = Pass::kForward;
  EXPECT_EQ(Account(g, fwd)->root().cost.mac_flops, 10);
  EXPECT_EQ(Account(g, fwd)->root().nodes, 1);
  // The "full" built after the backward section is an update, not forward work.
  EXPECT_TRUE(g.node(2).update);
  AccountOptions upd;
  upd.pass = Pass::kUpdate;
  EXPECT_EQ(Account(g, upd)->root().nodes, 1);
  AccountOptions bwd;
  bwd.pass = Pass::kBackward;
  EXPECT_EQ(Account(g, bwd)->root().cost.mac_flops, 1000);
  EXPECT_EQ(Account(g)->root().cost.mac_flops, 1010);
  AccountOptions only_full;
  only_full.ops = {"full"};
  EXPECT_EQ(Account(g, only_full)->root().nodes, 1);
  EXPECT_EQ(Account(g, only_full)->root().cost.mac_flops, 0);
  EXPECT_EQ(Account(g, only_full)->root().cost.bytes_written, 8);
}

TEST(Accounting, ForwardAndBackwardOfARealGradient) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 4, 8}, DType::f32);
  Value loss;
  {
    auto s = b.scope("proj");
    Value w = b.Parameter("weight", Shape{8, 8}, DType::f32);
    loss = Sum(Linear(x, w));
  }
  auto grads = Grad(b, loss, TrainableParameters(b));
  ASSERT_TRUE(grads.ok()) << grads.status();
  b.MarkOutput((*grads)[0], "dw");
  ASSERT_TRUE(b.ok()) << b.status();
  AccountOptions fwd, bwd;
  fwd.pass = Pass::kForward;
  bwd.pass = Pass::kBackward;
  auto all = Account(g), f = Account(g, fwd), k = Account(g, bwd);
  ASSERT_TRUE(all.ok() && f.ok() && k.ok());
  EXPECT_EQ(f->Find("proj")->cost.mac_flops, 2 * 8 * 8 * 8);  // x · wᵀ
  EXPECT_EQ(k->Find("proj")->cost.mac_flops, 2 * 8 * 8 * 8);  // dw = dyᵀ · x (x needs no gradient)
  EXPECT_EQ(all->Find("proj")->cost.mac_flops, f->Find("proj")->cost.mac_flops + k->Find("proj")->cost.mac_flops);
  EXPECT_EQ(all->root().nodes, f->root().nodes + k->root().nodes);
  EXPECT_GT(k->root().nodes, 0);
}

TEST(Accounting, Exports) {
  SmallNet net;
  auto r = Account(net.g);
  ASSERT_TRUE(r.ok()) << r.status();
  TableOptions t;
  t.max_depth = 1;
  std::string md = r->ToMarkdown(t);
  EXPECT_NE(md.find("| scope | nodes |"), std::string::npos) << md;
  EXPECT_NE(md.find("Table-1 KFLOP"), std::string::npos) << md;  // the unit its largest value needs
  EXPECT_NE(md.find("| (total) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| unet |"), std::string::npos) << md;
  EXPECT_EQ(md.find("unet.down"), std::string::npos) << md;  // depth 2: cut

  std::string csv = r->ToCsv();
  EXPECT_EQ(csv.rfind("scope,depth,nodes,params,param_bytes,table1_flops,total_flops,mac_flops,", 0), 0u) << csv;
  EXPECT_NE(csv.find("\nunet.down.0.attn1,4,2,16,64,160,163,150,10,1,2,"), std::string::npos) << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), static_cast<long>(r->scopes().size()) + 1);

  TableOptions lean;
  lean.complete = lean.bytes = lean.params = false;
  std::vector<const ScopeCost*> rows = r->Match("*.attn1");
  std::string json = r->ToJson(lean, &rows);
  EXPECT_NE(json.find("\"path\": \"unet.mid.attn1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"table1_flops\": 1000"), std::string::npos) << json;
  EXPECT_EQ(json.find("total_flops"), std::string::npos) << json;
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(std::count(json.begin(), json.end(), '{'), 4);
  EXPECT_EQ(std::count(json.begin(), json.end(), '{'), std::count(json.begin(), json.end(), '}'));
}

TEST(Accounting, JsonWriter) {
  JsonWriter j(/*pretty=*/false);
  j.BeginObject();
  j.Key("a").Int(-3);
  j.Key("b\"q").String("line\nbreak\\ \x01 é");
  j.Key("c").BeginArray().Double(0.1).Double(1e300).Double(NAN).Bool(true).Null().EndArray();
  j.Key("d").BeginObject().EndObject();
  j.Key("e").BeginArray().EndArray();
  j.EndObject();
  EXPECT_EQ(j.str(),
            "{\"a\":-3,\"b\\\"q\":\"line\\nbreak\\\\ \\u0001 é\","
            "\"c\":[0.1,1e+300,null,true,null],\"d\":{},\"e\":[]}");
  JsonWriter p;
  p.BeginObject().Key("x").BeginArray().Int(1).Int(2).EndArray().EndObject();
  EXPECT_EQ(p.str(), "{\n  \"x\": [\n    1,\n    2\n  ]\n}");
}

TEST(Accounting, GlobMatch) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("*.attn1", "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1"));
  EXPECT_FALSE(GlobMatch("*.attn1", "unet.attn1.to_q"));
  EXPECT_TRUE(GlobMatch("*.attn1*", "unet.attn1.to_q"));
  EXPECT_TRUE(GlobMatch("a?c", "abc"));
  EXPECT_FALSE(GlobMatch("a?c", "ac"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(GlobMatch("**x", "x"));
  EXPECT_FALSE(GlobMatch("", "x"));
}

TEST(Accounting, InvalidGraphIsAnError) {
  Graph g;
  ValueInfo v;
  v.type = {Shape{2}, DType::f32};
  g.AddValue(v);  // an intermediate nobody produces
  EXPECT_FALSE(Account(g).ok());
}

// ---- The paper's Table 1 self-attention rows --------------------------------------------

// The self-attention module as the real models have it: q, k, v and out
// projections (SD1.5: bias on out only; PixArt: on all four), heads split
// by reshape + permute, QK^T and AV as batched matmuls, scale and softmax.
// x: [B, N, C]. Parameters are shapes only.
Value SelfAttention(Builder& b, Value x, int heads, bool qkv_bias) {
  auto s = b.scope("attn1");
  const int64_t B = x.dim(0), N = x.dim(1), C = x.dim(2), d = C / heads;
  auto proj = [&](const char* name, bool bias) {
    auto p = b.scope(name);
    Value w = b.Parameter("weight", Shape{C, C}, x.dtype());
    std::optional<Value> bv;
    if (bias) bv = b.Parameter("bias", Shape{C}, x.dtype());
    return std::pair<Value, std::optional<Value>>{w, bv};
  };
  auto heads_first = [&](Value t) { return Permute(Reshape(t, {B, N, heads, d}), {0, 2, 1, 3}); };
  auto [wq, bq] = proj("to_q", qkv_bias);
  auto [wk, bk] = proj("to_k", qkv_bias);
  auto [wv, bv] = proj("to_v", qkv_bias);
  Value q = heads_first(Linear(x, wq, bq));  // [B, h, N, d]
  Value k = heads_first(Linear(x, wk, bk));
  Value v = heads_first(Linear(x, wv, bv));
  Value p = Softmax(Scale(MatMul(q, k, std::nullopt, {.trans_b = true}), 1.0 / std::sqrt(static_cast<double>(d))));  // [B, h, N, N]
  Value o = Reshape(Permute(MatMul(p, v), {0, 2, 1, 3}), {B, N, C});
  auto [wo, bo] = proj("to_out", true);
  return Linear(o, wo, bo);
}

StatusOr<CostReport> AttentionReport(int64_t n, int64_t c, int heads, bool qkv_bias) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, n, c}, DType::f16);  // batch 2: classifier-free guidance
  b.MarkOutput(SelfAttention(b, x, heads, qkv_bias), "y");
  CF_RETURN_IF_ERROR(b.status());
  return Account(g);
}

struct Row {
  int64_t h, w;
  double paper_g;  // the paper's Table 1, GFLOPs
};

TEST(Accounting, Table1SelfAttentionSd15) {
  const int64_t C = 320;
  for (const Row& r : {Row{512, 512, 49.67}, Row{1024, 1024, 714.08}, Row{1440, 2560, 8587.98},
                       Row{2160, 4096, 49149.21}, Row{4320, 7680, 688821.39}, Row{8640, 15360, 11010934.11}}) {
    const int64_t N = (r.h / 8) * (r.w / 8);
    auto rep = AttentionReport(N, C, 8, /*qkv_bias=*/false);
    ASSERT_TRUE(rep.ok()) << rep.status();
    const ScopeCost* attn = rep->Find("attn1");
    ASSERT_NE(attn, nullptr);
    // The real graph: one bias add (to_out), per docs/paper-facts.md.
    EXPECT_EQ(attn->cost.table1_flops(), 2 * (8 * N * C * C + 4 * N * N * C + N * C)) << r.w << "x" << r.h;
    EXPECT_EQ(attn->tokens, N);
    EXPECT_EQ(attn->params, 4 * C * C + C);
    // The paper's rows assume four bias adds: within 2e-4 of ours, and equal
    // to the four-bias formula to the printed digits.
    const double paper4 = 2.0 * (8.0 * N * C * C + 4.0 * N * N * C + 4.0 * N * C) / 1e9;
    EXPECT_NEAR(paper4, r.paper_g, 0.006) << r.w << "x" << r.h;
    EXPECT_NEAR(attn->cost.table1_flops() / 1e9 / r.paper_g, 1.0, 2e-4);
    EXPECT_GT(attn->cost.total_flops(), attn->cost.table1_flops());
  }
}

TEST(Accounting, Table1SelfAttentionPixArt) {
  const int64_t C = 1152;
  // The paper's PixArt "2K" entry is 2048x2048 (docs/paper-facts.md).
  for (const Row& r : {Row{512, 512, 31.42}, Row{1024, 1024, 241.63}, Row{2048, 2048, 2821.94},
                       Row{2160, 4096, 11741.69}, Row{4320, 7680, 157546.49}, Row{8640, 15360, 2487706.88}}) {
    const int64_t N = (r.h / 16) * (r.w / 16);
    auto rep = AttentionReport(N, C, 16, /*qkv_bias=*/true);
    ASSERT_TRUE(rep.ok()) << rep.status();
    const ScopeCost* attn = rep->Find("attn1");
    ASSERT_NE(attn, nullptr);
    const int64_t formula = 2 * (8 * N * C * C + 4 * N * N * C + 4 * N * C);
    EXPECT_EQ(attn->cost.table1_flops(), formula) << r.w << "x" << r.h;
    EXPECT_NEAR(formula / 1e9, r.paper_g, 0.006) << r.w << "x" << r.h;
    EXPECT_EQ(attn->params, 4 * C * C + 4 * C);
  }
}

}  // namespace
}  // namespace cf
