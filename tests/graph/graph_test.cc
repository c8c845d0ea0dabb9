// Graph IR and builder: Verify on hand-made broken graphs (cycles, dangling
// values, duplicate names), builder errors that name the scope, op and
// shapes, scopes and parameter names, lookups, ToText and ToDot.
#include <gtest/gtest.h>

#include <algorithm>

#include "graph/builder.h"
#include "ops/core/full.h"

namespace cf {
namespace {

// "gt_op": output of input 0's type, or of attr `shape` when given; fails
// shape inference when its inputs' last dimensions differ.
OpDef GtOpDef() {
  OpDef d;
  d.name = "gt_op";
  d.min_inputs = 0;
  d.max_inputs = 3;
  d.infer = [](const OpCall& c) -> StatusOr<std::vector<TensorType>> {
    for (size_t i = 1; i < c.inputs.size(); ++i)
      CF_CHECK_ARG(c.inputs[i].shape.dim(-1) == c.inputs[0].shape.dim(-1), "last dimensions differ: ",
                   c.inputs[0].shape.dim(-1), " vs ", c.inputs[i].shape.dim(-1));
    if (c.attrs.Has("shape")) return std::vector<TensorType>{{Shape(c.attrs.Ints("shape")), DType::f32}};
    CF_CHECK_ARG(!c.inputs.empty(), "needs an input or a shape");
    return std::vector<TensorType>(c.attrs.Int("outputs", 1), c.inputs[0]);
  };
  d.doc = "test only";
  return d;
}
CF_REGISTER_OP(GtOpDef());

const OpDef* GtOp() { return OpRegistry::Global().Find("gt_op"); }

int Leaf(Graph& g, ValueKind kind, const std::string& name, Shape shape = Shape{2}) {
  ValueInfo v;
  v.kind = kind;
  v.name = name;
  v.type = {std::move(shape), DType::f32};
  return g.AddValue(v);
}
int Intermediate(Graph& g) {
  ValueInfo v;
  v.type = {Shape{2}, DType::f32};
  return g.AddValue(v);
}
int AddNode(Graph& g, std::vector<int> in, std::vector<int> out) {
  Node n;
  n.op = GtOp();
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return g.AddNode(n);
}
std::string VerifyMessage(const Graph& g) {
  Status s = g.Verify();
  return s.ok() ? "OK" : std::string(s.message());
}

TEST(Graph, VerifyAcceptsAWellFormedGraph) {
  Graph g;
  int x = Leaf(g, ValueKind::kInput, "x");
  int a = Intermediate(g);
  int b = Intermediate(g);
  AddNode(g, {x}, {a});
  AddNode(g, {a, x}, {b});
  g.mutable_value(b).is_output = true;
  g.mutable_value(b).output_name = "y";
  EXPECT_EQ(VerifyMessage(g), "OK");
  EXPECT_EQ(g.value(a).producer, 0);
  EXPECT_EQ(g.value(b).producer, 1);
  auto consumers = g.Consumers();
  EXPECT_EQ(consumers[x], (std::vector<int>{0, 1}));
  EXPECT_EQ(consumers[a], (std::vector<int>{1}));
  EXPECT_TRUE(consumers[b].empty());
}

TEST(Graph, VerifyCatchesACycle) {
  // Node 0 reads b, which node 1 makes from node 0's output: a cycle (in
  // node order, a read before the value exists).
  Graph g;
  int x = Leaf(g, ValueKind::kInput, "x");
  int a = Intermediate(g);
  int b = Intermediate(g);
  AddNode(g, {x, b}, {a});
  AddNode(g, {a}, {b});
  std::string m = VerifyMessage(g);
  EXPECT_NE(m.find("before it is produced"), std::string::npos) << m;
  EXPECT_NE(m.find("gt_op"), std::string::npos) << m;
  EXPECT_NE(m.find("%2"), std::string::npos) << m;
}

TEST(Graph, VerifyCatchesDanglingValues) {
  {
    Graph g;  // an intermediate that no node produces
    Leaf(g, ValueKind::kInput, "x");
    Intermediate(g);
    std::string m = VerifyMessage(g);
    EXPECT_NE(m.find("never produced"), std::string::npos) << m;
  }
  {
    Graph g;  // a read of a value that does not exist
    int x = Leaf(g, ValueKind::kInput, "x");
    int a = Intermediate(g);
    AddNode(g, {x, 7}, {a});
    std::string m = VerifyMessage(g);
    EXPECT_NE(m.find("missing value %7"), std::string::npos) << m;
  }
  {
    Graph g;  // a value produced twice
    int x = Leaf(g, ValueKind::kInput, "x");
    int a = Intermediate(g);
    AddNode(g, {x}, {a});
    AddNode(g, {x}, {a});
    std::string m = VerifyMessage(g);
    EXPECT_NE(m.find("more than once"), std::string::npos) << m;
  }
  {
    Graph g;  // an input with a producer
    int x = Leaf(g, ValueKind::kInput, "x");
    int p = Leaf(g, ValueKind::kParameter, "w");
    AddNode(g, {x}, {p});
    std::string m = VerifyMessage(g);
    EXPECT_NE(m.find("has a producer"), std::string::npos) << m;
  }
  {
    Graph g;  // a node without an op
    Node n;
    g.AddNode(n);
    EXPECT_NE(VerifyMessage(g).find("no op"), std::string::npos);
  }
}

TEST(Graph, VerifyCatchesDuplicateNames) {
  {
    Graph g;
    Leaf(g, ValueKind::kInput, "x");
    Leaf(g, ValueKind::kInput, "x");
    std::string m = VerifyMessage(g);
    EXPECT_NE(m.find("two inputs named 'x'"), std::string::npos) << m;
  }
  {
    Graph g;
    Leaf(g, ValueKind::kParameter, "w");
    Leaf(g, ValueKind::kParameter, "w");
    std::string m = VerifyMessage(g);
    EXPECT_NE(m.find("two parameters named 'w'"), std::string::npos) << m;
  }
  {
    Graph g;  // an input and a parameter may share a name
    Leaf(g, ValueKind::kInput, "x");
    Leaf(g, ValueKind::kParameter, "x");
    EXPECT_EQ(VerifyMessage(g), "OK");
  }
  {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{2}, DType::f32);
    b.MarkOutput(x, "y");
    b.MarkOutput(b.Op1("gt_op", {x}), "y");
    std::string m = VerifyMessage(g);
    EXPECT_NE(m.find("two outputs named 'y'"), std::string::npos) << m;
  }
}

TEST(Builder, ScopesAndParameterNames) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 4}, DType::f32);
  Value w, y;
  {
    auto s = b.scope("unet");
    {
      auto t = b.scope("down_blocks.0");
      EXPECT_EQ(b.current_scope(), "unet.down_blocks.0");
      w = b.Parameter("weight", Shape{4}, DType::f32, {}, /*frozen=*/true);
      y = b.Op1("gt_op", {x, w});
      {
        auto abs = b.absolute_scope("elsewhere");
        EXPECT_EQ(b.current_scope(), "elsewhere");
      }
      EXPECT_EQ(b.current_scope(), "unet.down_blocks.0");
    }
    EXPECT_EQ(b.current_scope(), "unet");
  }
  EXPECT_EQ(b.current_scope(), "");
  b.MarkOutput(y, "y");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(g.value(w.id).name, "unet.down_blocks.0.weight");
  EXPECT_EQ(g.value(w.id).scope, "unet.down_blocks.0");
  EXPECT_TRUE(g.value(w.id).frozen);
  EXPECT_EQ(g.node(0).scope, "unet.down_blocks.0");
  EXPECT_EQ(g.value(y.id).scope, "unet.down_blocks.0");
  EXPECT_EQ(g.FindParameter("unet.down_blocks.0.weight"), w.id);
  EXPECT_EQ(g.FindInput("x"), x.id);
  EXPECT_EQ(g.FindOutput("y"), y.id);
  EXPECT_EQ(g.FindInput("w"), -1);
  EXPECT_EQ(g.Inputs(), (std::vector<int>{x.id}));
  EXPECT_EQ(g.Parameters(), (std::vector<int>{w.id}));
  EXPECT_EQ(g.Outputs(), (std::vector<int>{y.id}));
  EXPECT_EQ(y.shape(), (Shape{2, 4}));
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_EQ(y.rank(), 2);
  EXPECT_EQ(y.dim(1), 4);
}

TEST(Builder, ErrorsNameScopeOpAndShapes) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 3}, DType::f32);
  Value bad;
  {
    auto s = b.scope("model.block");
    Value w = b.Parameter("w", Shape{5}, DType::f32);
    bad = b.Op1("gt_op", {x, w});
  }
  EXPECT_FALSE(bad.valid());
  ASSERT_FALSE(b.ok());
  const std::string m(b.status().message());
  EXPECT_NE(m.find("at 'model.block'"), std::string::npos) << m;
  EXPECT_NE(m.find("gt_op"), std::string::npos) << m;
  EXPECT_NE(m.find("f32[2, 3]"), std::string::npos) << m;
  EXPECT_NE(m.find("f32[5]"), std::string::npos) << m;
  EXPECT_NE(m.find("last dimensions differ: 3 vs 5"), std::string::npos) << m;

  // Later ops give invalid values and the first error stays.
  Value later = b.Op1("gt_op", {x});
  EXPECT_FALSE(later.valid());
  EXPECT_EQ(std::string(b.status().message()), m);
}

TEST(Builder, OtherErrors) {
  {
    Graph g;
    Builder b(&g);
    b.Op1("no_such_op", {});
    EXPECT_NE(std::string(b.status().message()).find("unknown op 'no_such_op'"), std::string::npos) << b.status();
  }
  {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{2}, DType::f32);
    b.Op1("gt_op", {x, x, x, x});
    const std::string m(b.status().message());
    EXPECT_NE(m.find("gt_op: expects 0 to 3 inputs, got 4"), std::string::npos) << m;
  }
  {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{2}, DType::f32);
    b.Op1("gt_op", {x}, Attrs{{"outputs", int64_t{2}}});
    EXPECT_NE(std::string(b.status().message()).find("has 2 outputs"), std::string::npos) << b.status();
  }
  {
    Graph g, other;
    Builder b(&g), c(&other);
    Value y = c.Input("y", Shape{2}, DType::f32);
    b.Op1("gt_op", {y});
    EXPECT_NE(std::string(b.status().message()).find("belongs to another builder's graph"), std::string::npos) << b.status();
  }
  {
    Graph g;
    Builder b(&g);
    b.Parameter("w", Shape{3}, DType::f32, Tensor::Zeros(Shape{4}, DType::f32).value());
    EXPECT_NE(std::string(b.status().message()).find("parameter 'w' declared f32[3]"), std::string::npos)
        << b.status();
  }
  {
    Graph g;
    Builder b(&g);
    b.MarkOutput(Value{}, "y");
    EXPECT_NE(std::string(b.status().message()).find("output 'y': not a valid value"), std::string::npos);
  }
}

TEST(Builder, BackwardSectionMarksNodes) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2}, DType::f32);
  b.Op1("gt_op", {x});
  {
    auto bw = b.backward_section();
    b.Op1("gt_op", {x});
    {
      auto again = b.backward_section();  // nesting keeps it on
      b.Op1("gt_op", {x});
    }
    EXPECT_TRUE(b.building_backward());
  }
  b.Op1("gt_op", {x});
  ASSERT_EQ(g.num_nodes(), 4);
  EXPECT_FALSE(g.node(0).backward);
  EXPECT_TRUE(g.node(1).backward);
  EXPECT_TRUE(g.node(2).backward);
  EXPECT_FALSE(g.node(3).backward);
}

TEST(Graph, ToTextAndToDot) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 4}, DType::f32);
  Value y;
  {
    auto s = b.scope("blk");
    Value w = b.Parameter("w", Shape{4}, DType::f16, {}, /*frozen=*/true);
    Value f = Full(b, Shape{2, 4}, DType::f32, 1.5);
    y = b.Op1("gt_op", {x, w, f}, Attrs{{"note", std::string("say \"hi\" \\ bye\nnext")}});
  }
  b.MarkOutput(y, "out \"quoted\" \\ back");
  ASSERT_TRUE(b.ok()) << b.status();
  const std::string text = g.ToText();
  EXPECT_NE(text.find("%0 = input \"x\" f32[2, 4]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("%1 = parameter \"blk.w\" f16[4] frozen\n"), std::string::npos) << text;
  EXPECT_NE(text.find("%2 = full() {dtype=f32, shape=[2,4], value=1.5} : f32[2, 4]  # blk\n"), std::string::npos)
      << text;
  // Quotes, backslashes and newlines in names and string attributes are
  // escaped, so each entry stays one line with balanced quotes.
  EXPECT_NE(text.find("%3 = gt_op(%0, %1, %2) {note=\"say \\\"hi\\\" \\\\ bye\\nnext\"} : f32[2, 4]  # blk\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("output \"out \\\"quoted\\\" \\\\ back\" = %3\n"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 5) << text;  // 2 values, 2 nodes, 1 output

  const std::string dot = g.ToDot();
  EXPECT_EQ(dot.rfind("digraph cf {", 0), 0u) << dot;
  EXPECT_NE(dot.find("v0 [shape=invhouse, label=\"x\\nf32[2, 4]\"]"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n1 [shape=box, label=\"gt_op\\nblk\"]"), std::string::npos) << dot;
  EXPECT_NE(dot.find("v0 -> n1"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n0 -> n1"), std::string::npos) << dot;  // full's output into gt_op
  EXPECT_NE(dot.find("label=\"out \\\"quoted\\\" \\\\ back\""), std::string::npos) << dot;
  EXPECT_EQ(dot.substr(dot.size() - 2), "}\n");
}

}  // namespace
}  // namespace cf
