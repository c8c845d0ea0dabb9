// The `pad` CUDA kernel (ops/shape/shape_pad_kernels.cuh) runs on the CPU
// interpreter of runtime/kdev against the CPU kernel, with the plan the CUDA
// launcher picks (vector width, widened layout, fill pattern, index type):
// 16-, 8-, 4- and 2-byte vectors (sizes and element offsets that break each
// alignment), crops (negative pads), odd sizes, one element, f32/f16/bf16,
// and both index types on every case. Then the strided-copy engine's CUDA
// kernels (ops/shape/strided_copy_kernels.cuh: generic, widened, tiled
// transpose, memcpy) against StridedCopyCpu with StridedCopyCuda's plan.
#include <set>

#include "ops/shape/shape_pad_kernels.cuh"
#include "ops/shape/strided_copy_kernels.cuh"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

using namespace pad_kernels;

template <int V, class I, class T>
Status RunPad(const DevBuf<T>& x, DevBuf<T>& y, const PadPlan& p) {
  using W = typename PadWord<V>::T;
  int64_t n = 0;
  const DevPad<I> d = DevPadOf<I>(p.l, &n);
  const GridStride g = PadGridFor(n);
  return ki::Launch(KdConfig(sizeof(I) == 4 ? "PadKernel<u32>" : "PadKernel<i64>", g.grid, g.block),
                    &PadKernel<W, I>, kd::ptr_cast<W>(y.ptr()), kd::ptr_cast<const W>(kd::Ptr<const T>(x)), d,
                    static_cast<I>(n), PadFill<W>(p));
}

template <int V, class T>
Status RunPadIndexed(const DevBuf<T>& x, DevBuf<T>& y, const PadPlan& p, bool force64) {
  if (!force64 && PadIndex32(p.l)) return RunPad<V, uint32_t>(x, y, p);
  return RunPad<V, int64_t>(x, y, p);
}

// PadCuda's dispatch (shape_pad.cu).
template <class T>
StatusOr<int> PadAny(const DevBuf<T>& x, DevBuf<T>& y, const PadLayout& canonical, uint64_t bits, bool force64) {
  const PadPlan p = PadPlanFor(canonical, int64_t(sizeof(T)), bits, reinterpret_cast<uintptr_t>(y.host()),
                               reinterpret_cast<uintptr_t>(x.host()));
  switch (p.vec) {
    case 2: CF_RETURN_IF_ERROR((RunPadIndexed<2>(x, y, p, force64))); break;
    case 4: CF_RETURN_IF_ERROR((RunPadIndexed<4>(x, y, p, force64))); break;
    case 8: CF_RETURN_IF_ERROR((RunPadIndexed<8>(x, y, p, force64))); break;
    case 16: CF_RETURN_IF_ERROR((RunPadIndexed<16>(x, y, p, force64))); break;
    default: return absl::InternalError(absl::StrCat("unexpected vector width ", p.vec));
  }
  return p.vec;
}

template <class T> uint64_t FillBitsOf(float v) {
  const T t(v);
  uint64_t bits = 0;
  std::memcpy(&bits, static_cast<const void*>(&t), sizeof(T));
  return bits;
}

TEST(ShapeInterp, Pad) {
  struct Case {
    Shape xs;
    std::vector<int64_t> pads;
  };
  const Case cases[] = {
      {{2, 5, 4, 3}, {0, 0, 1, 2, 2, 1, 0, 0}},  // NHWC padded on H and W: C runs of 12 / 6 bytes
      {{2, 5, 4, 4}, {0, 0, 1, 2, 2, 1, 0, 0}},  // C runs of 16 / 8 bytes
      {{3, 7, 5}, {0, 0, -1, -2, 1, -1}},         // crops and pads mixed
      {{37, 45}, {1, 1, 3, 2}},
      {{4, 8}, {0, 0, 8, 8}},
      {{1}, {2, 3}},
      {{1, 1, 1, 1}, {0, 0, 0, 0, 0, 0, 0, 0}},   // one element, nothing padded
      {{2, 3, 5}, {1, 0, 0, 1, -2, 2}},
  };
  const float value = 1.5f;
  uint64_t seed = 1;
  std::set<int> widths;
  for (const Case& c : cases) {
    Shape ys = c.xs;
    PadLayout l;
    for (int k = 0; k < c.xs.rank(); ++k) {
      ys[k] = c.xs[k] + c.pads[2 * k] + c.pads[2 * k + 1];
      l.Add(ys[k], c.xs[k], c.pads[2 * k]);
    }
    const PadLayout canonical = l.Canonical();
    const Attrs a{{"pads", c.pads}, {"value", double(value)}};
    for (DType t : kInterpDTypes) {
      for (size_t offset : {size_t{0}, size_t{1}}) {
        for (bool force64 : {false, true}) {
          const Tensor x = RandomTensor(c.xs, DType::f32, seed++);
          EXPECT_TRUE(MatchesCpuReference("pad", {x}, a, t, [&](const std::vector<Tensor>& in) {
            return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
              using T = decltype(tag);
              DevBuf<T> xb(in[0], "x", offset), yb(size_t(ys.numel()), "y", offset);
              CF_ASSIGN_OR_RETURN(int w, PadAny<T>(xb, yb, canonical, FillBitsOf<T>(value), force64));
              widths.insert(w);
              return std::vector<Tensor>{yb.ToTensor(ys)};
            });
          })) << c.xs.ToString() << " offset " << offset << " force64 " << force64;
        }
      }
    }
  }
  EXPECT_EQ(widths, (std::set<int>{2, 4, 8, 16}));  // every vector width ran
}

TEST(ShapeInterp, PadPlan) {
  PadLayout l;
  l.Add(7, 5, 1);
  l.Add(24, 12, 4);  // f32: 96 / 48 / 16 bytes
  PadPlan p = PadPlanFor(l, 4, 0x3fc00000u, 256, 512);
  EXPECT_EQ(p.vec, 16);
  EXPECT_EQ(p.l.out[1], 6);
  EXPECT_EQ(p.l.in[1], 3);
  EXPECT_EQ(p.l.before[1], 1);
  EXPECT_EQ(PadFill<uint32_t>(p), 0x3fc00000u);
  EXPECT_EQ(PadPlanFor(l, 4, 0, 256 + 8, 512).vec, 8);
  EXPECT_EQ(PadPlanFor(l, 4, 0, 256 + 4, 512).vec, 4);
  PadLayout odd;
  odd.Add(3, 1, -1);
  EXPECT_EQ(PadPlanFor(odd, 2, 0x3e00, 256, 512).vec, 2);
  EXPECT_EQ(PadFill<uint16_t>(PadPlanFor(odd, 2, 0x3e00, 256, 512)), 0x3e00);
  EXPECT_EQ(PadPlanFor(odd, 2, 0, 256, 512).l.out[0], 3);
  PadLayout big;
  big.Add(int64_t(1) << 31, 1, 0);
  EXPECT_FALSE(PadIndex32(big));
  EXPECT_TRUE(PadIndex32(l));
  EXPECT_EQ(PadGridFor(int64_t(1) << 40).grid, 65535u * 16);
}

// ---- strided copy (ops/shape/strided_copy_kernels.cuh) -------------------------------------
// StridedCopyCuda's plan (path, vector width, widened layout, index type,
// grid) on the interpreter, byte for byte against StridedCopyCpu with the same
// CopyLayout: permutations of rank 2..4 with odd sizes (tiled transposes that
// are not multiples of 32), concat / slice / strided slices with offsets,
// 1/2/4/8-byte elements, element offsets that break vector alignment, one
// element, zero elements, and both index types of the generic kernel.

namespace sck = strided_copy_kernels;

// What one interpreted copy ran: path, vector width (bytes), 32-bit indices.
struct CopyRan {
  sck::CopyPath path;
  int vec;
  bool index32;
  auto operator<=>(const CopyRan&) const = default;
};

template <int V, class I>
Status RunCopyGeneric(kd::Ptr<uint8_t> dst, kd::Ptr<const uint8_t> src, const CopyLayout& l) {
  using W = typename sck::CopyWord<V>::T;
  const int64_t n = l.numel();
  const GridStride g = sck::CopyGridFor(n);
  return ki::Launch(KdConfig(sizeof(I) == 4 ? "StridedCopyKernel<u32>" : "StridedCopyKernel<i64>", g.grid, g.block),
                    &sck::StridedCopyKernel<W, I>, kd::ptr_cast<W>(dst), kd::ptr_cast<const W>(src),
                    sck::ToDev<I>(l), static_cast<I>(n));
}

template <int V>
Status RunCopyTransposed(kd::Ptr<uint8_t> dst, kd::Ptr<const uint8_t> src, const CopyLayout& l, int q) {
  using W = typename sck::CopyWord<V>::T;
  const sck::TransposeLaunch t = sck::TransposeLaunchFor(l, q);
  return ki::Launch(KdConfig("TransposeTiledKernel", t.grid, t.block), &sck::TransposeTiledKernel<W>,
                    kd::ptr_cast<W>(dst), kd::ptr_cast<const W>(src), t.batch, t.num_batch, t.M, t.N, t.src_n,
                    t.dst_m);
}

template <class F> Status CopyBySize(int v, F&& f) {
  switch (v) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 16: return f(std::integral_constant<int, 16>{});
    default: return absl::InternalError(absl::StrCat("unexpected vector width ", v));
  }
}

// StridedCopyCuda's dispatch (strided_copy.cu); dst / src point into buffers
// of dst_room / src_room bytes from there on (the memcpy path's bounds).
StatusOr<CopyRan> InterpStridedCopy(kd::Ptr<uint8_t> dst, int64_t dst_room, kd::Ptr<const uint8_t> src,
                                    int64_t src_room, const CopyLayout& layout, int64_t elem_size, bool force64) {
  const sck::CopyPlan p = sck::StridedCopyPlanFor(layout, elem_size, reinterpret_cast<uintptr_t>(dst.raw()),
                                                  reinterpret_cast<uintptr_t>(src.raw()));
  CopyRan ran{p.path, p.vec, false};
  switch (p.path) {
    case sck::CopyPath::kEmpty: break;
    case sck::CopyPath::kMemcpy: {
      const int64_t bytes = p.l.numel() * elem_size;
      if (bytes > dst_room || bytes > src_room) return absl::InternalError("memcpy out of bounds");
      std::memcpy(dst.raw(), src.raw(), size_t(bytes));
      break;
    }
    case sck::CopyPath::kTransposed:
      if (p.vec != elem_size) return absl::InternalError("transposed path widened");
      CF_RETURN_IF_ERROR(CopyBySize(p.vec, [&](auto vs) { return RunCopyTransposed<decltype(vs)::value>(dst, src, p.l, p.q); }));
      break;
    case sck::CopyPath::kGeneric:
      ran.index32 = !force64 && sck::CopyIndex32(p.l);
      CF_RETURN_IF_ERROR(CopyBySize(p.vec, [&](auto vs) {
        return ran.index32 ? RunCopyGeneric<decltype(vs)::value, uint32_t>(dst, src, p.l)
                           : RunCopyGeneric<decltype(vs)::value, int64_t>(dst, src, p.l);
      }));
      break;
  }
  return ran;
}

// Copies `l` from src_elems elements (starting src_off in) to dst_elems
// (starting dst_off in), both buffers `shift` elements past a 16-byte
// boundary, on the interpreter (both index types) and with StridedCopyCpu,
// and compares every byte of the destinations.
void CheckCopy(const CopyLayout& l, int64_t src_elems, int64_t dst_elems, int64_t src_off, int64_t dst_off,
               std::set<CopyRan>* ran, const std::string& what) {
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (int64_t es : {1, 2, 4, 8}) {
    for (int64_t shift : {0, 1}) {
      for (bool force64 : {false, true}) {
        const int64_t src_bytes = src_elems * es, dst_bytes = dst_elems * es;
        std::vector<kd::uint4> src_store(size_t((src_bytes + (shift + 1) * es) / 16 + 1));
        std::vector<kd::uint4> dst_store(size_t((dst_bytes + (shift + 1) * es) / 16 + 1));
        uint8_t* s = reinterpret_cast<uint8_t*>(src_store.data()) + shift * es;
        uint8_t* d = reinterpret_cast<uint8_t*>(dst_store.data()) + shift * es;
        for (int64_t b = 0; b < src_bytes; ++b) {
          seed = seed * 6364136223846793005ull + 1442695040888963407ull;
          s[b] = uint8_t(seed >> 56);
        }
        std::memset(d, 0xab, size_t(dst_bytes));
        std::vector<uint8_t> want(d, d + dst_bytes);
        StridedCopyCpu(want.data() + dst_off * es, s + src_off * es, l, es);
        ki::Buffer<uint8_t> sb(s, size_t(src_bytes), "src"), db(d, size_t(dst_bytes), "dst");
        const StatusOr<CopyRan> r =
            InterpStridedCopy(db.ptr() + dst_off * es, (dst_elems - dst_off) * es,
                              kd::Ptr<const uint8_t>(sb.ptr()) + src_off * es, (src_elems - src_off) * es, l, es,
                              force64);
        ASSERT_TRUE(r.ok()) << what << " es " << es << " shift " << shift << ": " << r.status();
        ran->insert(*r);
        EXPECT_TRUE(std::equal(want.begin(), want.end(), d))
            << what << " es " << es << " shift " << shift << " force64 " << force64;
        if (r->path != sck::CopyPath::kGeneric) break;  // force64 only changes the generic kernel
      }
    }
  }
}

// permute(x, perm) of a row-major x as StridedCopy sees it.
CopyLayout PermuteLayout(const Shape& xs, const std::vector<int>& perm) {
  const auto xstr = RowMajorStrides(xs);
  Shape ys = xs;
  for (int i = 0; i < xs.rank(); ++i) ys[i] = xs[perm[i]];
  const auto ystr = RowMajorStrides(ys);
  CopyLayout l;
  for (int i = 0; i < xs.rank(); ++i) l.Add(ys[i], xstr[perm[i]], ystr[i]);
  return l;
}

TEST(ShapeInterp, StridedCopyPermute) {
  std::set<CopyRan> ran;
  const Shape shapes[] = {{37, 45}, {1, 37}, {5, 3, 7}, {3, 37, 45}, {3, 5, 2, 7}, {1, 1, 1}};
  for (const Shape& xs : shapes) {
    std::vector<int> perm(size_t(xs.rank()));
    for (int i = 0; i < xs.rank(); ++i) perm[i] = i;
    do {
      std::string what = xs.ToString() + " perm";
      for (int p : perm) what += " " + std::to_string(p);
      CheckCopy(PermuteLayout(xs, perm), xs.numel(), xs.numel(), 0, 0, &ran, what);
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
  auto has = [&](sck::CopyPath p) {
    return std::any_of(ran.begin(), ran.end(), [&](const CopyRan& r) { return r.path == p; });
  };
  EXPECT_TRUE(has(sck::CopyPath::kTransposed));
  EXPECT_TRUE(has(sck::CopyPath::kMemcpy));  // identity permutations, one element
  EXPECT_TRUE(has(sck::CopyPath::kGeneric));  // [.., H, D] head permutes keeping the last dim
}

TEST(ShapeInterp, StridedCopyConcatSlice) {
  std::set<CopyRan> ran;
  // concat of [4, a] parts along the last axis into [4, sum]: each part at its column offset.
  const std::vector<int64_t> widths[] = {{6, 10}, {3, 5, 8}, {2, 2, 4}, {1, 16}};
  for (const auto& ws : widths) {
    int64_t total = 0;
    for (int64_t w : ws) total += w;
    int64_t at = 0;
    for (int64_t w : ws) {
      CopyLayout l;
      l.Add(4, w, total);
      l.Add(w, 1, 1);
      CheckCopy(l, 4 * w, 4 * total, 0, at, &ran, "concat last axis part " + std::to_string(w) + " at " + std::to_string(at));
      at += w;
    }
  }
  {  // concat along axis 1 of [2, 3, 8] and [2, 5, 8] into [2, 8, 8]: rows merge
    CopyLayout l;
    l.Add(2, 40, 64);
    l.Add(5, 8, 8);
    l.Add(8, 1, 1);
    CheckCopy(l, 80, 128, 0, 24, &ran, "concat axis 1 part 2");
  }
  // slice [6, 10, 12][1:5, 2:9, c0:c0+w] and its backward (the slice written back).
  for (auto [c0, w] : {std::pair<int64_t, int64_t>{3, 8}, {4, 8}, {0, 12}, {2, 2}, {5, 7}}) {
    CopyLayout fwd, bwd;
    fwd.Add(4, 120, 7 * w);
    fwd.Add(7, 12, w);
    fwd.Add(w, 1, 1);
    bwd.Add(4, 7 * w, 120);
    bwd.Add(7, w, 12);
    bwd.Add(w, 1, 1);
    const int64_t off = 1 * 120 + 2 * 12 + c0;
    const std::string what = "slice c0 " + std::to_string(c0) + " w " + std::to_string(w);
    CheckCopy(fwd, 720, 28 * w, off, 0, &ran, what);
    CheckCopy(bwd, 28 * w, 720, 0, off, &ran, what + " backward");
  }
  {  // a stepped slice x[::2, 1::3] of [9, 24]: strided on both dims in the source
    CopyLayout l;
    l.Add(5, 48, 8);
    l.Add(8, 3, 1);
    CheckCopy(l, 216, 40, 1, 0, &ran, "stepped slice");
  }
  {  // a slice of one element, and of none
    CopyLayout one, none;
    one.Add(1, 12, 1);
    one.Add(1, 1, 1);
    none.Add(3, 12, 0);
    none.Add(0, 1, 1);
    CheckCopy(one, 720, 1, 389, 0, &ran, "one element");
    CheckCopy(none, 720, 1, 0, 0, &ran, "no element");
  }
  std::set<int> widened;
  bool generic_unwidened = false, index64 = false;
  for (const CopyRan& r : ran) {
    if (r.path != sck::CopyPath::kGeneric) continue;
    widened.insert(r.vec);
    index64 = index64 || !r.index32;
    generic_unwidened = generic_unwidened || r.vec == 1;
  }
  EXPECT_TRUE(widened.count(2) && widened.count(4) && widened.count(8) && widened.count(16)) << widened.size();
  EXPECT_TRUE(generic_unwidened);
  EXPECT_TRUE(index64);
  EXPECT_TRUE(ran.count(CopyRan{sck::CopyPath::kEmpty, 1, false}));
  EXPECT_TRUE(ran.count(CopyRan{sck::CopyPath::kMemcpy, 8, false}));
}

// The kernels' grid-stride loops past what the launcher's grid covers at
// these sizes: the generic kernel on one block, the tiled one on grid.z 2 for
// 5 batches.
TEST(ShapeInterp, StridedCopyGridStride) {
  const Shape xs{5, 37, 45};
  const CopyLayout l = PermuteLayout(xs, {0, 2, 1}).Canonical();
  std::vector<uint32_t> x(size_t(xs.numel())), want(x.size()), got(x.size(), 0xffffffffu), got2(got);
  for (size_t i = 0; i < x.size(); ++i) x[i] = uint32_t(i * 2654435761u);
  StridedCopyCpu(want.data(), x.data(), l, 4);
  ki::Buffer<uint32_t> xb(x.data(), x.size(), "src"), yb(got.data(), got.size(), "dst"), yb2(got2.data(), got2.size(), "dst");
  ASSERT_EQ(sck::StridedCopyPlanFor(l, 4, 0, 0).path, sck::CopyPath::kTransposed);
  sck::TransposeLaunch t = sck::TransposeLaunchFor(l, sck::StridedCopyPlanFor(l, 4, 0, 0).q);
  EXPECT_EQ(t.num_batch, 5);
  t.grid.z = 2;
  const Status tiled = ki::Launch(KdConfig("TransposeTiledKernel", t.grid, t.block), &sck::TransposeTiledKernel<uint32_t>,
                                  yb.ptr(), kd::Ptr<const uint32_t>(xb.ptr()), t.batch, t.num_batch, t.M, t.N, t.src_n,
                                  t.dst_m);
  ASSERT_TRUE(tiled.ok()) << tiled;
  EXPECT_EQ(got, want);
  const Status generic = ki::Launch(KdConfig("StridedCopyKernel<u32>", 1, 256), &sck::StridedCopyKernel<uint32_t, uint32_t>,
                                    yb2.ptr(), kd::Ptr<const uint32_t>(xb.ptr()), sck::ToDev<uint32_t>(l),
                                    uint32_t(xs.numel()));
  ASSERT_TRUE(generic.ok()) << generic;
  EXPECT_EQ(got2, want);
}

TEST(ShapeInterp, StridedCopyPlan) {
  using sck::CopyPath;
  {  // a 65536 x 65536 f32 transpose: tiled, 2^32 elements
    CopyLayout l;
    l.Add(65536, 1, 65536);
    l.Add(65536, 65536, 1);
    const sck::CopyPlan p = sck::StridedCopyPlanFor(l, 4, 0, 0);
    EXPECT_EQ(p.path, CopyPath::kTransposed);
    EXPECT_EQ(p.q, 0);
    EXPECT_FALSE(sck::CopyIndex32(p.l));
    const sck::TransposeLaunch t = sck::TransposeLaunchFor(p.l, p.q);
    EXPECT_EQ(t.grid.x, 2048u);
    EXPECT_EQ(t.grid.y, 2048u);
    EXPECT_EQ(t.grid.z, 1u);
  }
  {  // M tiles over the grid's y limit: generic
    CopyLayout l;
    const int64_t M = int64_t(65535) * 32 + 1;
    l.Add(M, 1, 5);
    l.Add(5, M, 1);
    EXPECT_EQ(sck::StridedCopyPlanFor(l, 2, 0, 0).path, CopyPath::kGeneric);
    EXPECT_TRUE(sck::CopyIndex32(sck::StridedCopyPlanFor(l, 2, 0, 0).l));
    l.sizes[0] = M - 1;
    EXPECT_EQ(sck::StridedCopyPlanFor(l, 2, 0, 0).path, CopyPath::kTransposed);
  }
  {  // batches past 65535: grid.z clamps (the kernel strides over the rest)
    CopyLayout l;
    l.Add(70000, 4096, 4096);
    l.Add(64, 1, 64);
    l.Add(64, 64, 1);
    const sck::CopyPlan p = sck::StridedCopyPlanFor(l, 1, 0, 0);
    ASSERT_EQ(p.path, CopyPath::kTransposed);
    const sck::TransposeLaunch t = sck::TransposeLaunchFor(p.l, p.q);
    EXPECT_EQ(t.num_batch, 70000);
    EXPECT_EQ(t.grid.z, 65535u);
    EXPECT_EQ(t.grid.x, 2u);
  }
  {  // few elements, source offsets past 2^31: 64-bit unless widening shrinks them
    CopyLayout l;
    l.Add(3, int64_t(1) << 30, 7);
    l.Add(7, 1, 1);
    sck::CopyPlan p = sck::StridedCopyPlanFor(l, 1, 0, 0);
    EXPECT_EQ(p.path, CopyPath::kGeneric);
    EXPECT_EQ(p.vec, 1);
    EXPECT_FALSE(sck::CopyIndex32(p.l));
    CopyLayout w;
    w.Add(3, int64_t(1) << 30, 8);
    w.Add(8, 1, 1);
    p = sck::StridedCopyPlanFor(w, 1, 0, 0);
    EXPECT_EQ(p.vec, 8);
    EXPECT_EQ(p.l.src_strides[0], int64_t(1) << 27);
    EXPECT_TRUE(sck::CopyIndex32(p.l));
    EXPECT_EQ(sck::StridedCopyPlanFor(w, 1, 0, 4).vec, 4);  // the source address allows 4 bytes
    EXPECT_EQ(sck::StridedCopyPlanFor(w, 1, 3, 0).vec, 1);
  }
  {  // destination offsets past 2^31, and more than 2^31 elements
    CopyLayout l;
    l.Add(2, 3, int64_t(1) << 31);
    l.Add(3, 1, 1);
    EXPECT_FALSE(sck::CopyIndex32(sck::StridedCopyPlanFor(l, 1, 0, 0).l));
    CopyLayout big;
    big.Add(int64_t(1) << 31, 2, 1);
    EXPECT_FALSE(sck::CopyIndex32(sck::StridedCopyPlanFor(big, 1, 0, 0).l));
    big.sizes[0] -= 1;
    EXPECT_FALSE(sck::CopyIndex32(big));  // max source offset 2^32 - 4
    big.src_strides[0] = 1;
    EXPECT_TRUE(sck::CopyIndex32(big));
    EXPECT_EQ(sck::StridedCopyPlanFor(big, 1, 0, 0).path, CopyPath::kMemcpy);
    EXPECT_EQ(sck::CopyGridFor(int64_t(1) << 40).grid, 65535u * 16);
    CopyLayout edge;  // the exact boundary: every offset and the count below 2^31
    edge.Add(2, 1, int64_t(1) << 31);
    EXPECT_FALSE(sck::CopyIndex32(edge));
    edge.dst_strides[0] -= 1;
    EXPECT_TRUE(sck::CopyIndex32(edge));
    edge.src_strides[0] = int64_t(1) << 31;
    EXPECT_FALSE(sck::CopyIndex32(edge));
    CopyLayout count;
    count.Add(int64_t(1) << 31, 0, 0);
    EXPECT_FALSE(sck::CopyIndex32(count));
    count.sizes[0] -= 1;
    EXPECT_TRUE(sck::CopyIndex32(count));
  }
  {  // zero elements, one element, a scalar
    CopyLayout z;
    z.Add(0, 1, 1);
    EXPECT_EQ(sck::StridedCopyPlanFor(z, 4, 0, 0).path, CopyPath::kEmpty);
    CopyLayout one;
    one.Add(1, 9, 11);
    EXPECT_EQ(sck::StridedCopyPlanFor(one, 4, 0, 0).path, CopyPath::kMemcpy);
    EXPECT_EQ(sck::StridedCopyPlanFor(CopyLayout{}, 4, 0, 0).path, CopyPath::kMemcpy);
  }
}

}  // namespace
}  // namespace cf::testing
