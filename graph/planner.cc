// Memory planner (docs/planner.md). Three steps:
//  1. liveness: a transient lives from its producer to its last consumer;
//  2. buffers: transients are grouped into buffers (a range of the arena) by
//     the view rule (a view op's output is its input 0's bytes) and the
//     in-place rule (an inplace_ok op's output takes the bytes of input 0 when
//     that buffer dies at this node and the sizes match); a buffer lives from
//     its first producer to the last read of any member;
//  3. offsets: a best-fit allocator swept over the node order, then greedy
//     best fit (TFLite's GreedyBySize, XLA's heap simulator) under several
//     orders and randomly perturbed size orders, keeping the smallest arena.
#include "graph/planner.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>
#include <random>
#include <set>

namespace cf {

const char* PlacementName(Placement p) {
  switch (p) {
    case Placement::kNone: return "none";
    case Placement::kArena: return "arena";
    case Placement::kInPlace: return "in-place";
    case Placement::kView: return "view";
    case Placement::kBoundView: return "bound-view";
  }
  return "?";
}

std::string MemoryPlan::ToString() const {
  std::string s = absl::StrFormat(
      "arena %d B (lower bound %d B, ratio %.4f; no reuse %d B), parameters %d B, inputs/outputs %d B, "
      "workspace %d B, %d buffers, %d in place, %d views, strategy %s",
      arena_bytes, lower_bound_bytes, ratio(), no_reuse_bytes, parameter_bytes, io_bytes, workspace_bytes,
      num_buffers, num_inplace, num_views, strategy);
  return s;
}

namespace {

int64_t AlignUp(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

bool IsTransient(const ValueInfo& v) { return v.kind == ValueKind::kIntermediate && !v.is_output; }

struct Buffer {
  int start = 0;     // first node where it is live
  int end = 0;       // last node where it is live (inclusive)
  int64_t size = 0;  // aligned bytes
};

// Placed buffers indexed for "which placed buffers are live at some node of
// [s, e]": a max-segment-tree over the buffers sorted by start, holding each
// placed buffer's end. A query visits only subtrees with a placed buffer that
// ends at or after s, among buffers that start at or before e.
class PlacedIndex {
 public:
  explicit PlacedIndex(const std::vector<Buffer>& bufs) : bufs_(bufs) {
    const int n = static_cast<int>(bufs.size());
    by_start_.resize(n);
    std::iota(by_start_.begin(), by_start_.end(), 0);
    std::stable_sort(by_start_.begin(), by_start_.end(),
                     [&](int a, int b) { return bufs[a].start < bufs[b].start; });
    pos_.resize(n);
    starts_.resize(n);
    for (int i = 0; i < n; ++i) {
      pos_[by_start_[i]] = i;
      starts_[i] = bufs[by_start_[i]].start;
    }
    leaves_ = 1;
    while (leaves_ < std::max(n, 1)) leaves_ *= 2;
    max_end_.assign(2 * leaves_, -1);
  }

  void Insert(int b) {
    int i = leaves_ + pos_[b];
    max_end_[i] = bufs_[b].end;
    for (i /= 2; i >= 1; i /= 2) max_end_[i] = std::max(max_end_[2 * i], max_end_[2 * i + 1]);
  }

  // Calls f(buffer) for each placed buffer with start <= e and end >= s.
  template <typename F>
  void ForOverlapping(int s, int e, F&& f) const {
    const int limit = static_cast<int>(std::upper_bound(starts_.begin(), starts_.end(), e) - starts_.begin());
    Visit(1, 0, leaves_, limit, s, f);
  }

 private:
  template <typename F>
  void Visit(int node, int lo, int hi, int limit, int s, F& f) const {
    if (lo >= limit || max_end_[node] < s) return;
    if (node >= leaves_) {
      f(by_start_[lo]);
      return;
    }
    const int mid = (lo + hi) / 2;
    Visit(2 * node, lo, mid, limit, s, f);
    Visit(2 * node + 1, mid, hi, limit, s, f);
  }

  const std::vector<Buffer>& bufs_;
  std::vector<int> by_start_, pos_, starts_;
  int leaves_ = 1;
  std::vector<int> max_end_;
};

// Places buffers in `order`, each at the smallest gap (best fit) between the
// already placed buffers whose lifetimes overlap its own, or on top of them.
// Returns the arena size. Cost: O((n + pairs) log n) for the pairs of
// buffers whose lifetimes overlap.
int64_t GreedyBestFit(const std::vector<Buffer>& bufs, const std::vector<int>& order, std::vector<int64_t>* offsets) {
  offsets->assign(bufs.size(), -1);
  PlacedIndex index(bufs);
  std::vector<std::pair<int64_t, int64_t>> busy;  // (offset, end) of overlapping placed buffers
  int64_t arena = 0;
  for (int b : order) {
    const Buffer& buf = bufs[b];
    if (buf.size == 0) {
      (*offsets)[b] = 0;
      continue;
    }
    busy.clear();
    index.ForOverlapping(buf.start, buf.end, [&](int o) {
      busy.emplace_back((*offsets)[o], (*offsets)[o] + bufs[o].size);
    });
    std::sort(busy.begin(), busy.end());
    int64_t top = 0, best = -1, best_gap = 0;
    for (const auto& [lo, hi] : busy) {
      const int64_t gap = lo - top;
      if (gap >= buf.size && (best < 0 || gap < best_gap)) {
        best = top;
        best_gap = gap;
      }
      top = std::max(top, hi);
    }
    const int64_t off = best >= 0 ? best : top;
    (*offsets)[b] = off;
    arena = std::max(arena, off + buf.size);
    index.Insert(b);
  }
  return arena;
}

// Pairs of buffers whose lifetimes overlap, in O(n log n): for each buffer,
// those that start before it ends minus those that end before it starts.
int64_t OverlappingPairs(const std::vector<Buffer>& bufs) {
  std::vector<int> starts, ends;
  for (const Buffer& b : bufs) {
    starts.push_back(b.start);
    ends.push_back(b.end);
  }
  std::sort(starts.begin(), starts.end());
  std::sort(ends.begin(), ends.end());
  int64_t sum = 0;
  for (const Buffer& b : bufs) {
    sum += (std::upper_bound(starts.begin(), starts.end(), b.end) - starts.begin()) -
           (std::lower_bound(ends.begin(), ends.end(), b.start) - ends.begin()) - 1;
  }
  return sum / 2;
}

// A best-fit allocator simulated over the node order: at each node, the
// buffers born there are allocated (largest first) in the smallest free block
// that holds them (or at the top), then the buffers that die there are freed
// and neighbouring free blocks merge. O(n log n) whatever the overlaps, so it
// is the fallback for huge graphs; on stack-like lifetimes (a backward pass
// freeing what the forward pass allocated) it packs well.
int64_t SweepBestFit(const std::vector<Buffer>& bufs, int num_nodes, std::vector<int64_t>* offsets) {
  offsets->assign(bufs.size(), -1);
  std::vector<std::vector<int>> born(num_nodes), dies(num_nodes);
  for (size_t b = 0; b < bufs.size(); ++b) {
    born[bufs[b].start].push_back(static_cast<int>(b));
    dies[bufs[b].end].push_back(static_cast<int>(b));
  }
  std::set<std::pair<int64_t, int64_t>> by_offset;  // free blocks below the top: (offset, size)
  std::set<std::pair<int64_t, int64_t>> by_size;    // the same blocks as (size, offset)
  int64_t top = 0, arena = 0;
  auto remove = [&](std::set<std::pair<int64_t, int64_t>>::iterator it) {
    by_size.erase({it->second, it->first});
    return by_offset.erase(it);
  };
  for (int i = 0; i < num_nodes; ++i) {
    std::sort(born[i].begin(), born[i].end(), [&](int a, int b) { return bufs[a].size > bufs[b].size; });
    for (int b : born[i]) {
      const int64_t size = bufs[b].size;
      if (size == 0) {
        (*offsets)[b] = 0;
        continue;
      }
      auto fit = by_size.lower_bound({size, -1});
      if (fit != by_size.end()) {
        const auto [free_size, off] = *fit;
        by_size.erase(fit);
        by_offset.erase({off, free_size});
        if (free_size > size) {
          by_offset.insert({off + size, free_size - size});
          by_size.insert({free_size - size, off + size});
        }
        (*offsets)[b] = off;
        continue;
      }
      // No block fits: grow the top (absorbing a free block that ends at it).
      int64_t off = top;
      if (!by_offset.empty()) {
        auto last = std::prev(by_offset.end());
        if (last->first + last->second == top) {
          off = last->first;
          remove(last);
        }
      }
      (*offsets)[b] = off;
      top = off + size;
      arena = std::max(arena, top);
    }
    for (int b : dies[i]) {
      if (bufs[b].size == 0) continue;
      int64_t lo = (*offsets)[b], hi = lo + bufs[b].size;
      auto next = by_offset.lower_bound({lo, -1});
      if (next != by_offset.end() && next->first == hi) {
        hi += next->second;
        next = remove(next);
      }
      if (next != by_offset.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second == lo) {
          lo = prev->first;
          remove(prev);
        }
      }
      if (hi == top) {
        top = lo;  // the free space at the top is just "above the top"
      } else {
        by_offset.insert({lo, hi - lo});
        by_size.insert({hi - lo, lo});
      }
    }
  }
  return arena;
}

int64_t Duration(const Buffer& b) { return static_cast<int64_t>(b.end) - b.start + 1; }

// Orders for GreedyBestFit: "a goes before b" (ties keep buffer order).
struct Order {
  const char* name;
  bool (*first)(const Buffer& a, const Buffer& b);
};

const Order kOrders[] = {
    {"size", [](const Buffer& a, const Buffer& b) {
       if (a.size != b.size) return a.size > b.size;
       return Duration(a) > Duration(b);
     }},
    {"lifetime", [](const Buffer& a, const Buffer& b) {
       if (Duration(a) != Duration(b)) return Duration(a) > Duration(b);
       return a.size > b.size;
     }},
    {"size*lifetime", [](const Buffer& a, const Buffer& b) {
       // As doubles: the product of bytes and nodes can pass 2^63.
       const double x = static_cast<double>(a.size) * static_cast<double>(Duration(a));
       const double y = static_cast<double>(b.size) * static_cast<double>(Duration(b));
       if (x != y) return x > y;
       return a.size > b.size;
     }},
    {"first-use", [](const Buffer& a, const Buffer& b) {
       if (a.start != b.start) return a.start < b.start;
       return a.size > b.size;
     }},
};

// Work allowed for all greedy passes together, in buffers plus overlapping
// pairs visited (~100 ns each, so about a second). A pass over a 50k-node
// training graph, whose activations live from the forward to the backward
// pass, would visit ~10^8 pairs: there only the sweep runs.
constexpr int64_t kGreedyBudget = 10'000'000;
// Then greedy passes over randomly perturbed size orders (a fixed seed, so
// plans are reproducible), until the arena reaches the lower bound, this
// many passes were made, or the budget above is spent. The perturbation
// grows with every pass: at first only sizes within 2x of each other swap.
constexpr int kPerturbedPasses = 1000;
constexpr double kNoiseStart = 1.0;   // log2 units
constexpr double kNoiseStep = 0.01;

}  // namespace

StatusOr<MemoryPlan> PlanMemory(const Graph& graph, const PlanOptions& options) {
  CF_RETURN_IF_ERROR(graph.Verify());
  CF_CHECK_ARG(options.alignment > 0, "PlanMemory: alignment must be positive, got ", options.alignment);
  const int nv = graph.num_values();
  MemoryPlan plan;
  plan.offset.assign(nv, -1);
  plan.first_use.assign(nv, -1);
  plan.last_use.assign(nv, -1);
  plan.alias_of.assign(nv, -1);
  plan.placement.assign(nv, Placement::kNone);

  // 1. Liveness.
  std::vector<int> last_read(nv, -1);
  for (const Node& n : graph.nodes())
    for (int in : n.inputs) last_read[in] = std::max(last_read[in], n.id);
  for (const ValueInfo& v : graph.values()) {
    if (v.kind == ValueKind::kParameter || v.kind == ValueKind::kConstant) {
      plan.parameter_bytes += v.type.bytes();
    } else if (v.kind == ValueKind::kInput || v.is_output) {
      plan.io_bytes += v.type.bytes();
    }
  }

  // 2. Buffers, walking the nodes in order: by the time node i is reached,
  // every member a buffer has so far is known, and so is the last read of
  // each, so "the buffer dies at node i" can be decided there.
  std::vector<Buffer> bufs;
  std::vector<int> buf_of(nv, -1);
  for (const Node& n : graph.nodes()) {
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      const int o = n.outputs[k];
      const ValueInfo& v = graph.value(o);
      if (!IsTransient(v)) continue;
      plan.first_use[o] = n.id;
      plan.last_use[o] = std::max(last_read[o], n.id);
      const int in = n.inputs.empty() ? -1 : n.inputs[0];
      if (k == 0 && in >= 0 && options.allow_views && n.op->view_of_input0) {
        const int b = buf_of[in];
        if (b >= 0 && v.type.bytes() <= graph.value(in).type.bytes()) {
          plan.placement[o] = Placement::kView;
          plan.alias_of[o] = in;
          buf_of[o] = b;
          bufs[b].end = std::max(bufs[b].end, plan.last_use[o]);
          ++plan.num_views;
          continue;
        }
        if (b < 0 && v.type.bytes() <= graph.value(in).type.bytes()) {
          // Input 0 is not in the arena (an input, parameter, constant or
          // graph output, or a view of one): the executor binds a view.
          plan.placement[o] = Placement::kBoundView;
          plan.alias_of[o] = in;
          ++plan.num_views;
          continue;
        }
      }
      if (k == 0 && in >= 0 && options.allow_inplace && n.op->inplace_ok && buf_of[in] >= 0 &&
          bufs[buf_of[in]].end == n.id && v.type.bytes() == graph.value(in).type.bytes()) {
        // Another input sharing these bytes under a different value (a view)
        // could be read out of element order: no in-place then.
        const int b = buf_of[in];
        bool clash = false;
        for (size_t j = 1; j < n.inputs.size(); ++j)
          clash = clash || (n.inputs[j] != in && buf_of[n.inputs[j]] == b);
        if (!clash) {
          plan.placement[o] = Placement::kInPlace;
          buf_of[o] = b;
          bufs[b].end = std::max(bufs[b].end, plan.last_use[o]);
          ++plan.num_inplace;
          continue;
        }
      }
      plan.placement[o] = Placement::kArena;
      buf_of[o] = static_cast<int>(bufs.size());
      bufs.push_back({n.id, plan.last_use[o], AlignUp(v.type.bytes(), options.alignment)});
    }
  }
  for (int o = 0; o < nv; ++o)
    if (plan.placement[o] == Placement::kArena || plan.placement[o] == Placement::kInPlace)
      plan.no_reuse_bytes += AlignUp(graph.value(o).type.bytes(), options.alignment);
  plan.num_buffers = static_cast<int>(bufs.size());

  // Lower bound: the most buffer bytes live at one node.
  std::vector<int64_t> delta(graph.num_nodes() + 1, 0);
  for (const Buffer& b : bufs) {
    delta[b.start] += b.size;
    delta[b.end + 1] -= b.size;
  }
  int64_t live = 0;
  for (int i = 0; i < graph.num_nodes(); ++i) {
    live += delta[i];
    plan.lower_bound_bytes = std::max(plan.lower_bound_bytes, live);
  }

  // 3. Offsets.
  std::vector<int64_t> buf_offset(bufs.size(), 0);
  if (!options.reuse) {
    int64_t top = 0;
    for (size_t b = 0; b < bufs.size(); ++b) {
      buf_offset[b] = top;
      top += bufs[b].size;
    }
    plan.arena_bytes = top;
    plan.strategy = "no-reuse";
    plan.tried.emplace_back(plan.strategy, top);
  } else {
    // The sweep first: cheap, and the fallback when greedy passes run out of budget.
    std::vector<int64_t> offsets;
    plan.arena_bytes = SweepBestFit(bufs, graph.num_nodes(), &buf_offset);
    plan.strategy = "sweep";
    plan.tried.emplace_back(plan.strategy, plan.arena_bytes);
    auto consider = [&](const std::string& name, int64_t arena) {
      if (arena >= 0 && arena < plan.arena_bytes) {
        plan.arena_bytes = arena;
        plan.strategy = name;
        buf_offset = offsets;
      }
    };
    std::vector<int> order(bufs.size());
    const int64_t pass_cost = static_cast<int64_t>(bufs.size()) + OverlappingPairs(bufs);
    int64_t work = 0;
    auto affordable = [&]() { return work + pass_cost <= kGreedyBudget; };
    for (const Order& ord : kOrders) {
      if (plan.arena_bytes == plan.lower_bound_bytes || !affordable()) break;  // optimal, or no time left
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return ord.first(bufs[a], bufs[b]); });
      const int64_t arena = GreedyBestFit(bufs, order, &offsets);
      work += pass_cost;
      plan.tried.emplace_back(ord.name, arena);
      consider(ord.name, arena);
    }
    // Perturbed size orders: the key log2(size) + amplitude * U[0, 1) sorts
    // sizes within 2^amplitude of each other in random order, which breaks
    // the ties that make greedy by size leave holes.
    std::mt19937_64 rng(0x5eed);
    std::uniform_real_distribution<double> noise(0.0, 1.0);
    std::vector<double> key(bufs.size());
    int passes = 0;
    int64_t best_perturbed = -1;
    for (; passes < kPerturbedPasses && affordable() && plan.arena_bytes > plan.lower_bound_bytes; ++passes) {
      const double amplitude = kNoiseStart + kNoiseStep * passes;
      for (size_t b = 0; b < bufs.size(); ++b)
        key[b] = std::log2(static_cast<double>(bufs[b].size) + 1) + amplitude * noise(rng);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key[a] > key[b]; });
      const int64_t arena = GreedyBestFit(bufs, order, &offsets);
      work += pass_cost;
      if (best_perturbed < 0 || arena < best_perturbed) best_perturbed = arena;
      consider("perturbed-size", arena);
    }
    if (passes > 0) plan.tried.emplace_back(absl::StrCat("perturbed-size x", passes), best_perturbed);
  }
  for (int o = 0; o < nv; ++o)
    if (buf_of[o] >= 0) plan.offset[o] = buf_offset[buf_of[o]];
  return plan;
}

Status VerifyPlan(const Graph& graph, const MemoryPlan& plan) {
  const int nv = graph.num_values();
  const size_t n = static_cast<size_t>(nv);
  if (plan.offset.size() != n || plan.alias_of.size() != n || plan.placement.size() != n)
    return absl::FailedPreconditionError(absl::StrCat("plan: made for a graph of ", plan.offset.size(),
                                                      " values, this graph has ", nv,
                                                      " (a stale plan, or another graph's): plan it again"));

  // Lifetimes recomputed from the graph (the plan's own are not trusted).
  std::vector<int> first(nv, -1), last(nv, -1);
  for (const Node& nd : graph.nodes()) {
    for (int in : nd.inputs) last[in] = std::max(last[in], nd.id);
    for (int out : nd.outputs) first[out] = nd.id;
  }
  for (int v = 0; v < nv; ++v) last[v] = std::max(last[v], first[v]);

  auto where = [&](int v) {
    const ValueInfo& info = graph.value(v);
    return absl::StrCat("%", v, " (", info.type.ToString(), info.scope.empty() ? "" : ", scope '" + info.scope + "'",
                        ")");
  };
  auto in_arena = [&](int v) {
    const Placement p = plan.placement[v];
    return p == Placement::kArena || p == Placement::kInPlace || p == Placement::kView;
  };

  // Every value: its placement is allowed, and aliases follow a rule.
  // Visited leaves first, then node outputs in node order, so that an alias
  // target is always visited before the value that aliases it.
  std::vector<int> visit;
  visit.reserve(nv);
  for (int v = 0; v < nv; ++v)
    if (graph.value(v).producer < 0) visit.push_back(v);
  for (const Node& nd : graph.nodes()) visit.insert(visit.end(), nd.outputs.begin(), nd.outputs.end());
  std::vector<int> root(nv, -1);
  for (int v : visit) {
    const ValueInfo& info = graph.value(v);
    const Placement p = plan.placement[v];
    const int64_t bytes = info.type.bytes();
    if (p == Placement::kNone) {
      if (IsTransient(info)) return absl::FailedPreconditionError(absl::StrCat("plan: transient ", where(v), " is not planned"));
      if (plan.offset[v] != -1 || plan.alias_of[v] != -1)
        return absl::FailedPreconditionError(absl::StrCat("plan: unplanned ", where(v), " has an offset or alias"));
      continue;
    }
    if (!IsTransient(info))
      return absl::FailedPreconditionError(absl::StrCat("plan: ", where(v), " is an input, parameter, constant or output but "
                                              "is placed as ", PlacementName(p)));
    if (p == Placement::kArena) {
      if (plan.alias_of[v] != -1)
        return absl::FailedPreconditionError(absl::StrCat("plan: ", where(v), " has its own range but an alias"));
      if (plan.offset[v] < 0 || plan.offset[v] + bytes > plan.arena_bytes)
        return absl::FailedPreconditionError(absl::StrCat("plan: ", where(v), " at offset ", plan.offset[v], " (", bytes,
                                                " B) lies outside the arena (", plan.arena_bytes, " B)"));
      root[v] = v;
      continue;
    }
    const Node& nd = graph.node(info.producer);
    const int a = p == Placement::kInPlace ? (nd.inputs.empty() ? -1 : nd.inputs[0]) : plan.alias_of[v];
    if (p == Placement::kInPlace && plan.alias_of[v] != -1)
      return absl::FailedPreconditionError(absl::StrCat("plan: in-place ", where(v), " has alias_of set (views only)"));
    if (nd.inputs.empty() || a != nd.inputs[0] || nd.outputs[0] != v)
      return absl::FailedPreconditionError(absl::StrCat("plan: ", where(v), " (", PlacementName(p),
                                              ") must alias input 0 of its producer ", nd.op->name, ", not %", a));
    if (p == Placement::kInPlace || p == Placement::kView) {
      const bool rule = p == Placement::kInPlace
                            ? nd.op->inplace_ok && bytes == graph.value(a).type.bytes()
                            : nd.op->view_of_input0 && bytes <= graph.value(a).type.bytes();
      if (!rule)
        return absl::FailedPreconditionError(absl::StrCat("plan: ", where(v), " shares %", a, "'s bytes, but ", nd.op->name,
                                                " allows no ", PlacementName(p), " alias of these sizes"));
      if (!in_arena(a) || plan.offset[v] != plan.offset[a])
        return absl::FailedPreconditionError(absl::StrCat("plan: ", where(v), " (", PlacementName(p), ") is at offset ",
                                                plan.offset[v], " but %", a, " is at ", plan.offset[a]));
      root[v] = root[a];
    } else {  // kBoundView
      if (!nd.op->view_of_input0 || in_arena(a) || plan.offset[v] != -1)
        return absl::FailedPreconditionError(absl::StrCat("plan: ", where(v), " is a bound view of %", a,
                                                ", which needs a view op whose input 0 is outside the arena"));
    }
  }

  // Buffers: the members of each root, their lifetime and in-place order.
  struct Group {
    int root;
    int start, end;
    int64_t lo, hi;
  };
  std::vector<int> group_of(nv, -1);
  std::vector<Group> groups;
  std::vector<std::vector<int>> members;
  for (int v = 0; v < nv; ++v) {
    if (root[v] < 0) continue;
    int& g = group_of[root[v]];
    if (g < 0) {
      g = static_cast<int>(groups.size());
      groups.push_back({root[v], first[v], last[v], plan.offset[v], plan.offset[v] + graph.value(v).type.bytes()});
      members.emplace_back();
    }
    Group& gr = groups[g];
    gr.start = std::min(gr.start, first[v]);
    gr.end = std::max(gr.end, last[v]);
    gr.hi = std::max(gr.hi, plan.offset[v] + graph.value(v).type.bytes());
    members[g].push_back(v);
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].hi > plan.arena_bytes)
      return absl::FailedPreconditionError(absl::StrCat("plan: the buffer of ", where(groups[g].root), " ends at ",
                                              groups[g].hi, ", past the arena (", plan.arena_bytes, " B)"));
    // An in-place write at node i destroys the bytes: no member made before
    // i may be read after i.
    std::vector<int>& m = members[g];
    std::stable_sort(m.begin(), m.end(), [&](int a, int b) { return first[a] < first[b]; });
    int read_until = -1;
    for (size_t i = 0; i < m.size();) {
      size_t j = i;
      for (; j < m.size() && first[m[j]] == first[m[i]]; ++j) {
        if (plan.placement[m[j]] == Placement::kInPlace && read_until > first[m[j]])
          return absl::FailedPreconditionError(absl::StrCat("plan: ", where(m[j]), " overwrites its input in place at node ",
                                                  first[m[j]], ", but a value sharing those bytes is read until node ",
                                                  read_until));
      }
      for (size_t k = i; k < j; ++k) read_until = std::max(read_until, last[m[k]]);
      i = j;
    }
  }

  // Sweep over time: buffers live together must not overlap in bytes. The
  // live set is kept disjoint and sorted by offset, so each new buffer only
  // needs checking against its neighbours.
  std::vector<int> order(groups.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return groups[a].start < groups[b].start; });
  using Ending = std::pair<int, int>;  // (end, group)
  std::priority_queue<Ending, std::vector<Ending>, std::greater<>> ending;
  std::set<std::pair<int64_t, int>> active;  // (lo, group)
  for (int g : order) {
    const Group& gr = groups[g];
    while (!ending.empty() && ending.top().first < gr.start) {
      active.erase({groups[ending.top().second].lo, ending.top().second});
      ending.pop();
    }
    if (gr.hi == gr.lo) continue;  // empty: occupies nothing
    auto clash = [&](int other) {
      const Group& o = groups[other];
      return absl::FailedPreconditionError(absl::StrCat(
          "plan: ", where(gr.root), " live at nodes [", gr.start, ", ", gr.end, "] in bytes [", gr.lo, ", ", gr.hi,
          ") and ", where(o.root), " live at nodes [", o.start, ", ", o.end, "] in bytes [", o.lo, ", ", o.hi,
          ") are live together and overlap"));
    };
    auto it = active.lower_bound({gr.lo, -1});
    if (it != active.end() && groups[it->second].lo < gr.hi) return clash(it->second);
    if (it != active.begin() && groups[std::prev(it)->second].hi > gr.lo) return clash(std::prev(it)->second);
    active.insert({gr.lo, g});
    ending.push({gr.end, g});
  }
  return absl::OkStatus();
}

}  // namespace cf
