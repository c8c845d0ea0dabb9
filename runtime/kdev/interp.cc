// The CPU interpreter of the CUDA execution model (runtime/kdev/interp.h):
// one fiber per thread of a block (ucontext), a scheduler that runs each
// fiber until it blocks at a barrier or warp collective and then releases
// whatever can complete, and the checks on every access.
#include "runtime/kdev/interp.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cf::kd {

thread_local Dim3 threadIdx;
thread_local Dim3 blockIdx;
thread_local Dim3 blockDim;
thread_local Dim3 gridDim;

namespace interp {
namespace {

constexpr uint32_t kNever = 0xffffffffu;
constexpr size_t kSharedLimit = 232448;         // 227 KiB per block (sm_90)
constexpr size_t kStaticSharedLimit = 48 * 1024;
constexpr size_t kDefaultDynamicLimit = 48 * 1024;
constexpr size_t kStackBytes = 128 * 1024;

enum class Space : uint8_t { kGlobal, kShared };

// Per byte of shared memory: the last write and up to two reads since it,
// as (barrier epoch, thread, warp-sync clock).
struct Shadow {
  uint32_t w_epoch = kNever, w_time = 0;
  int32_t w_tid = -1;
  bool w_atomic = false;
  bool init = false;
  bool pending = false;  // a cp.async into this byte is in flight
  uint32_t r_epoch = kNever, r_time = 0, r_time2 = 0;
  int32_t r_tid = -1, r_tid2 = -1;
};

// A failed check. Inside a launch it ends the launch with its message; in
// host code (a Ptr dereferenced outside a kernel) it is a runtime_error.
struct Fault : std::runtime_error {
  explicit Fault(const std::string& m) : std::runtime_error(m), msg(m) {}
  std::string msg;
};
[[noreturn]] void Throw(std::string msg) { throw Fault(msg); }

}  // namespace

struct Region {
  char* base = nullptr;
  size_t bytes = 0;
  Space space = Space::kGlobal;
  std::string name;
  std::string decl;  // shared arrays: "float[32]"
  bool dead = false;
  bool owned = false;
  std::vector<Shadow> shadow;  // shared memory only
  ~Region() {
    if (owned) std::free(base);
  }
};

namespace {

// Regions outlive their buffers (dead), so a stale pointer reports use after free.
struct Graveyard {
  std::mutex mu;
  std::vector<std::unique_ptr<Region>> regions;
  void Add(std::unique_ptr<Region> r) {
    std::lock_guard<std::mutex> l(mu);
    regions.push_back(std::move(r));
  }
};
Graveyard& Regions() {
  static Graveyard* g = new Graveyard;
  return *g;
}

char* AlignedAlloc(size_t bytes, size_t align) {
  const size_t n = std::max<size_t>((bytes + align - 1) / align * align, align);
  return static_cast<char*>(std::aligned_alloc(align, n));
}

enum class FState : uint8_t { kRunnable, kBarrier, kWarp, kExited };
enum class OpKind : uint8_t { kShfl, kBallot, kAny, kAll, kSyncwarp, kActivemask, kMma, kLdmatrix };

struct WarpOp {
  explicit WarpOp(OpKind k) : kind(k) {}
  OpKind kind;
  ShflMode mode = ShflMode::kIdx;
  unsigned mask = 0xffffffffu;
  int width = 32;
  int b = 0;
  uint64_t in = 0, out = 0;
  // mma
  float* d = nullptr;
  const uint32_t* a = nullptr;
  const uint32_t* bfrag = nullptr;
  const float* c = nullptr;
  bool bf16 = false;
  // ldmatrix
  uint32_t* regs = nullptr;
  const char* addr = nullptr;
  const Region* region = nullptr;
  int count = 0;
  bool trans = false;
  Loc loc;
};

struct AsyncCopy {
  char* dst;
  const Region* dr;
  const char* src;
  int bytes, src_bytes;
};

struct Fiber {
  ucontext_t uc;
  char* stack = nullptr;
  FState st = FState::kExited;
  int tid = 0, warp = 0, lane = 0;
  Dim3 idx;
  Loc loc;             // where it waits
  WarpOp* op = nullptr;
  std::vector<AsyncCopy> open;
  std::deque<std::vector<AsyncCopy>> groups;
};

struct SyncEvent {
  uint32_t id;
  unsigned mask;
};

// Fiber stacks, kept per OS thread across launches; a guard page below each.
struct StackPool {
  char* base = nullptr;
  size_t count = 0, stride = 0;
  ~StackPool() {
    if (base) munmap(base, count * stride);
  }
  char* Get(size_t i, size_t n) {
    if (n > count) {
      if (base) munmap(base, count * stride);
      const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      stride = kStackBytes + page;
      void* m = mmap(nullptr, n * stride, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (m == MAP_FAILED) {
        base = nullptr;
        count = 0;
        return nullptr;
      }
      base = static_cast<char*>(m);
      count = n;
      for (size_t k = 0; k < n; ++k) mprotect(base + k * stride, page, PROT_NONE);
    }
    return base + i * stride + (stride - kStackBytes);
  }
};
thread_local StackPool t_stacks;

std::string Basename(const char* f) {
  const char* s = std::strrchr(f, '/');
  return s ? s + 1 : f;
}
std::string LocStr(const Loc& l) { return absl::StrCat(Basename(l.file_name()), ":", l.line()); }
std::string D3(const Dim3& d) { return absl::StrFormat("(%u,%u,%u)", d.x, d.y, d.z); }

const char* OpName(const WarpOp& op) {
  switch (op.kind) {
    case OpKind::kShfl:
      switch (op.mode) {
        case ShflMode::kIdx: return "shfl_sync";
        case ShflMode::kUp: return "shfl_up_sync";
        case ShflMode::kDown: return "shfl_down_sync";
        case ShflMode::kBfly: return "shfl_xor_sync";
      }
      return "shfl";
    case OpKind::kBallot: return "ballot_sync";
    case OpKind::kAny: return "any_sync";
    case OpKind::kAll: return "all_sync";
    case OpKind::kSyncwarp: return "syncwarp";
    case OpKind::kActivemask: return "activemask";
    case OpKind::kMma: return "mma.sync.m16n8k16";
    case OpKind::kLdmatrix: return "ldmatrix";
  }
  return "?";
}

struct LaunchState {
  const LaunchConfig* cfg = nullptr;
  Body body = nullptr;
  void* ctx = nullptr;
  int nthreads = 0, nwarps = 0;
  std::vector<Fiber> fibers;
  ucontext_t sched;
  Fiber* cur = nullptr;
  int attr_tid = -1;  // thread an access is attributed to when no fiber runs (ldmatrix)
  bool failed = false;
  std::string error;
  // Block state.
  Dim3 block;
  uint32_t epoch = 0;  // barriers passed in this block
  uint32_t clock = 0;  // syncwarp events in this block
  std::vector<std::vector<SyncEvent>> events;  // per warp, since the last barrier
  bool have_barrier = false;
  Loc last_barrier;
  // Shared memory of the launch (contents reset per block).
  std::vector<std::unique_ptr<Region>> shared;
  std::map<const void*, Region*> static_shared;
  size_t static_bytes = 0;
  Region* dynamic = nullptr;

  void Fail(std::string msg) {
    if (!failed) {
      failed = true;
      error = std::move(msg);
    }
  }
  int Tid() const { return cur ? cur->tid : attr_tid; }
  Dim3 IdxOf(int tid) const {
    const unsigned bx = cfg->block.x, by = cfg->block.y, t = static_cast<unsigned>(tid);
    return Dim3(t % bx, (t / bx) % by, t / (bx * by));
  }
  std::string ThreadStr(int tid) const { return absl::StrCat("thread ", D3(IdxOf(tid)), " [warp ", tid / 32, " lane ", tid % 32, "]"); }
  std::string Where() const {
    return absl::StrCat("kernel '", cfg->name, "', block ", D3(block), ", ", Tid() >= 0 ? ThreadStr(Tid()) : "scheduler");
  }
  std::string Since() const {
    return have_barrier ? absl::StrCat("since the __syncthreads at ", LocStr(last_barrier)) : "since the block started";
  }
};
thread_local LaunchState* t_launch = nullptr;

std::string RegionStr(const Region* r) {
  if (r->space == Space::kShared) {
    return absl::StrFormat("shared %s '%s' (%s, %zu bytes)", r->decl.empty() ? "memory" : "array", r->name,
                           r->decl.empty() ? "dynamic" : r->decl, r->bytes);
  }
  return absl::StrFormat("global buffer '%s' (%zu bytes)", r->name, r->bytes);
}
std::string HereStr() {
  LaunchState* L = t_launch;
  return L ? L->Where() : std::string("host code");
}
const char* KindStr(Access k) {
  switch (k) {
    case Access::kRead: return "read";
    case Access::kWrite: return "write";
    case Access::kAtomic: return "atomic update";
    case Access::kReadNc: return "ldg read";
  }
  return "?";
}

// Bounds, alignment and liveness; returns the byte offset.
size_t CheckBounds(const Region* r, const void* p, size_t size, size_t align, Access kind) {
  if (r == nullptr) {
    if (p == nullptr) Throw(absl::StrFormat("%s: %s of %zu bytes through a null pointer", HereStr(), KindStr(kind), size));
    Throw(absl::StrFormat("%s: %s of %zu bytes through an unregistered pointer %p (not from a Buffer or shared memory)",
                          HereStr(), KindStr(kind), size, p));
  }
  const std::ptrdiff_t off = static_cast<const char*>(p) - r->base;
  if (off < 0 || static_cast<size_t>(off) + size > r->bytes) {
    const std::ptrdiff_t elem = off >= 0 ? off / static_cast<std::ptrdiff_t>(size)
                                         : -((-off + static_cast<std::ptrdiff_t>(size) - 1) / static_cast<std::ptrdiff_t>(size));
    Throw(absl::StrFormat(
        "%s: out-of-bounds %s of %zu bytes at index %d (byte offset %d) of %s, which holds %zu elements of %zu bytes",
        HereStr(), KindStr(kind), size, elem, off, RegionStr(r), r->bytes / size, size));
  }
  if (r->dead) Throw(absl::StrFormat("%s: %s of %s after it was freed", HereStr(), KindStr(kind), RegionStr(r)));
  if (align > 1 && reinterpret_cast<uintptr_t>(p) % align != 0) {
    Throw(absl::StrFormat("%s: misaligned %s of %zu bytes at byte offset %d of %s (needs %zu-byte alignment)",
                          HereStr(), KindStr(kind), size, off, RegionStr(r), align));
  }
  return static_cast<size_t>(off);
}

// Whether thread b's access now is ordered after thread a's access at
// warp-sync clock t within the current barrier epoch.
bool Ordered(const LaunchState& L, int a, uint32_t t, int b) {
  if (a == b) return true;
  if (a / 32 != b / 32) return false;
  const unsigned bits = (1u << (a % 32)) | (1u << (b % 32));
  for (const SyncEvent& e : L.events[a / 32]) {
    if (e.id >= t && (e.mask & bits) == bits) return true;
  }
  return false;
}

void SharedAccess(Region* r, size_t off, size_t size, Access kind) {
  LaunchState* L = t_launch;
  if (L == nullptr) Throw(absl::StrFormat("host code: %s of %s outside a kernel", KindStr(kind), RegionStr(r)));
  const int b = L->Tid();
  const uint32_t E = L->epoch, now = L->clock;
  const bool reads = kind != Access::kWrite, writes = kind != Access::kRead;
  for (size_t i = off; i < off + size; ++i) {
    Shadow& s = r->shadow[i];
    if (s.pending) {
      Throw(absl::StrFormat(
          "%s: %s of %s at byte offset %zu while a cp.async into it is still in flight (missing cp_async_wait, or "
          "__syncthreads after it)",
          L->Where(), KindStr(kind), RegionStr(r), i));
    }
    if (reads && L->cfg->initcheck && !s.init) {
      Throw(absl::StrFormat(
          "%s: uninitialised read (initcheck) of %s at index %zu (byte offset %zu, %zu-byte access): no thread of this "
          "block has written it",
          L->Where(), RegionStr(r), off / size, i, size));
    }
    if (L->cfg->racecheck) {
      auto race = [&](const char* what, int other, const char* other_did) {
        Throw(absl::StrFormat(
            "%s: shared-memory race (racecheck, %s) on %s at index %zu (byte offset %zu, %zu-byte access): this "
            "%s follows %s by %s %s with no barrier between them",
            L->Where(), what, RegionStr(r), off / size, i, size, KindStr(kind), other_did, L->ThreadStr(other),
            L->Since()));
      };
      if (s.w_epoch == E && s.w_tid != b && !(kind == Access::kAtomic && s.w_atomic) &&
          !Ordered(*L, s.w_tid, s.w_time, b)) {
        race(writes ? "write after write" : "read after write", s.w_tid, s.w_atomic ? "an atomic update" : "a write");
      }
      if (writes && s.r_epoch == E) {
        if (s.r_tid != b && !Ordered(*L, s.r_tid, s.r_time, b)) race("write after read", s.r_tid, "a read");
        if (s.r_tid2 >= 0 && s.r_tid2 != b && !Ordered(*L, s.r_tid2, s.r_time2, b)) race("write after read", s.r_tid2, "a read");
      }
    }
    if (writes) {
      s.w_epoch = E;
      s.w_time = now;
      s.w_tid = b;
      s.w_atomic = kind == Access::kAtomic;
      s.init = true;
      s.r_epoch = kNever;
      s.r_tid = s.r_tid2 = -1;
    } else if (s.r_epoch != E) {
      s.r_epoch = E;
      s.r_tid = b;
      s.r_time = now;
      s.r_tid2 = -1;
    } else if (s.r_tid == b) {
      s.r_time = now;
    } else {
      s.r_tid2 = b;
      s.r_time2 = now;
    }
  }
}

void Yield(LaunchState& L, Fiber& f) {
  swapcontext(&f.uc, &L.sched);
  // Resumed by the scheduler (L.cur == &f again).
}

Fiber& CurrentFiber(const char* what) {
  LaunchState* L = t_launch;
  if (L == nullptr || L->cur == nullptr) Throw(absl::StrCat(what, " called outside a kernel"));
  return *L->cur;
}

uint64_t Collective(WarpOp& op) {
  LaunchState& L = *t_launch;
  Fiber& f = CurrentFiber(OpName(op));
  f.op = &op;
  f.loc = op.loc;
  f.st = FState::kWarp;
  Yield(L, f);
  f.op = nullptr;
  return op.out;
}

void CompleteCopies(LaunchState& L, std::vector<AsyncCopy>& copies) {
  for (const AsyncCopy& c : copies) {
    Region* dr = const_cast<Region*>(c.dr);
    const size_t off = static_cast<size_t>(c.dst - dr->base);
    for (int i = 0; i < c.bytes; ++i) dr->shadow[off + i].pending = false;
  }
  for (const AsyncCopy& c : copies) {
    Region* dr = const_cast<Region*>(c.dr);
    SharedAccess(dr, static_cast<size_t>(c.dst - dr->base), c.bytes, Access::kWrite);
    if (c.src_bytes > 0) std::memcpy(c.dst, c.src, c.src_bytes);
    if (c.src_bytes < c.bytes) std::memset(c.dst + c.src_bytes, 0, c.bytes - c.src_bytes);
  }
  copies.clear();
  (void)L;
}

void FiberMain() {
  LaunchState& L = *t_launch;
  Fiber& f = *L.cur;
  try {
    L.body(L.ctx);
    // Copies still in flight land when the thread exits.
    while (!f.groups.empty()) {
      CompleteCopies(L, f.groups.front());
      f.groups.pop_front();
    }
    CompleteCopies(L, f.open);
  } catch (const Fault& e) {
    L.Fail(e.msg);
  } catch (const std::exception& e) {
    L.Fail(absl::StrCat(L.Where(), ": exception: ", e.what()));
  }
  f.st = FState::kExited;
  swapcontext(&f.uc, &L.sched);  // never resumed
  std::abort();
}

// Kept out of line: getcontext returns twice, which the caller's locals must not see.
[[gnu::noinline]] void InitContext(ucontext_t* uc, char* stack) {
  getcontext(uc);
  uc->uc_stack.ss_sp = stack;
  uc->uc_stack.ss_size = kStackBytes;
  uc->uc_link = nullptr;
  makecontext(uc, &FiberMain, 0);
}

void Switch(LaunchState& L, Fiber& f) {
  L.cur = &f;
  threadIdx = f.idx;
  swapcontext(&L.sched, &f.uc);
  L.cur = nullptr;
}

std::string MaskStr(unsigned m) { return absl::StrFormat("0x%08x", m); }

// Lanes 0..n-1 as compact ranges: "0-15, 20".
std::string LanesStr(unsigned m) {
  std::string s;
  for (int i = 0; i < 32;) {
    if (!(m >> i & 1)) {
      ++i;
      continue;
    }
    int j = i;
    while (j + 1 < 32 && (m >> (j + 1) & 1)) ++j;
    absl::StrAppend(&s, s.empty() ? "" : ", ", i, j > i ? absl::StrCat("-", j) : "");
    i = j + 1;
  }
  return s;
}

// Executes a complete group of lanes `live` of warp w at the same collective.
void Execute(LaunchState& L, int w, unsigned live, const WarpOp& op0) {
  auto lane_op = [&](int lane) -> WarpOp& { return *L.fibers[w * 32 + lane].op; };
  switch (op0.kind) {
    case OpKind::kShfl: {
      const int c = op0.mode == ShflMode::kUp ? (32 - op0.width) << 8 : ((32 - op0.width) << 8) | 0x1f;
      const int segmask = (c >> 8) & 0x1f, clamp = c & 0x1f;
      for (int lane = 0; lane < 32; ++lane) {
        if (!(live >> lane & 1)) continue;
        WarpOp& op = lane_op(lane);
        const int bval = op.b & 0x1f;
        const int max_lane = (lane & segmask) | (clamp & ~segmask), min_lane = lane & segmask;
        int j = lane;
        bool pval = false;
        switch (op.mode) {
          case ShflMode::kUp: j = lane - bval; pval = j >= max_lane; break;
          case ShflMode::kDown: j = lane + bval; pval = j <= max_lane; break;
          case ShflMode::kBfly: j = lane ^ bval; pval = j <= max_lane; break;
          case ShflMode::kIdx: j = min_lane | (bval & ~segmask); pval = j <= max_lane; break;
        }
        if (!pval) j = lane;
        // A lane outside the group: the hardware returns an undefined value; poison it.
        op.out = (live >> j & 1) ? lane_op(j).in : ~uint64_t{0};
      }
      break;
    }
    case OpKind::kBallot:
    case OpKind::kAny:
    case OpKind::kAll: {
      unsigned votes = 0;
      for (int lane = 0; lane < 32; ++lane)
        if ((live >> lane & 1) && lane_op(lane).in != 0) votes |= 1u << lane;
      const uint64_t r = op0.kind == OpKind::kBallot ? votes : op0.kind == OpKind::kAny ? votes != 0 : votes == live;
      for (int lane = 0; lane < 32; ++lane)
        if (live >> lane & 1) lane_op(lane).out = r;
      break;
    }
    case OpKind::kSyncwarp:
      L.events[w].push_back({L.clock++, live});
      break;
    case OpKind::kActivemask:
      for (int lane = 0; lane < 32; ++lane)
        if (live >> lane & 1) lane_op(lane).out = live;
      break;
    case OpKind::kMma: {
      // Gather A (16x16), B (16x8, k x n), C (16x8) from the fragments (PTX
      // ISA, mma.m16n8k16 .f16/.bf16), compute in double, round once to f32.
      double A[16][16], B[16][8], C[16][8];
      auto val = [&](uint32_t reg, int h) {
        const uint16_t bits = static_cast<uint16_t>(reg >> (16 * h));
        return static_cast<double>(op0.bf16 ? BF16BitsToF32(bits) : F16BitsToF32(bits));
      };
      for (int lane = 0; lane < 32; ++lane) {
        const WarpOp& op = lane_op(lane);
        const int g = lane >> 2, t = lane & 3;
        for (int r = 0; r < 4; ++r)
          for (int h = 0; h < 2; ++h) A[g + 8 * (r & 1)][2 * t + h + 8 * (r >> 1)] = val(op.a[r], h);
        for (int r = 0; r < 2; ++r)
          for (int h = 0; h < 2; ++h) B[2 * t + h + 8 * r][g] = val(op.bfrag[r], h);
        for (int i = 0; i < 4; ++i) C[g + 8 * (i >> 1)][2 * t + (i & 1)] = op.c[i];
      }
      for (int lane = 0; lane < 32; ++lane) {
        const WarpOp& op = lane_op(lane);
        const int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; ++i) {
          const int m = g + 8 * (i >> 1), n = 2 * t + (i & 1);
          double s = C[m][n];
          for (int k = 0; k < 16; ++k) s += A[m][k] * B[k][n];
          op.d[i] = static_cast<float>(s);
        }
      }
      break;
    }
    case OpKind::kLdmatrix: {
      uint16_t M[4][8][8];
      for (int i = 0; i < op0.count; ++i) {
        for (int r = 0; r < 8; ++r) {
          const int src = 8 * i + r;
          const WarpOp& op = lane_op(src);
          L.attr_tid = w * 32 + src;
          if (op.region != nullptr && op.region->space != Space::kShared) {
            Throw(absl::StrFormat("%s: ldmatrix row address (matrix %d, row %d) points to %s, not shared memory",
                                  L.Where(), i, r, RegionStr(op.region)));
          }
          const size_t off = CheckBounds(op.region, op.addr, 16, 16, Access::kRead);
          SharedAccess(const_cast<Region*>(op.region), off, 16, Access::kRead);
          std::memcpy(M[i][r], op.addr, 16);
        }
      }
      L.attr_tid = -1;
      for (int lane = 0; lane < 32; ++lane) {
        WarpOp& op = lane_op(lane);
        const int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < op0.count; ++i) {
          const uint16_t lo = op0.trans ? M[i][2 * t][g] : M[i][g][2 * t];
          const uint16_t hi = op0.trans ? M[i][2 * t + 1][g] : M[i][g][2 * t + 1];
          op.regs[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
        }
      }
      break;
    }
  }
  for (int lane = 0; lane < 32; ++lane)
    if (live >> lane & 1) L.fibers[w * 32 + lane].st = FState::kRunnable;
}

bool SameCollective(const WarpOp& a, const WarpOp& b) {
  if (a.kind != b.kind || a.mask != b.mask) return false;
  if (a.kind == OpKind::kShfl) return a.mode == b.mode && a.width == b.width;
  if (a.kind == OpKind::kMma) return a.bf16 == b.bf16;
  if (a.kind == OpKind::kLdmatrix) return a.count == b.count && a.trans == b.trans;
  return true;
}

std::string OpStr(const WarpOp& op) {
  return absl::StrFormat("%s(mask %s) at %s", OpName(op), MaskStr(op.mask), LocStr(op.loc));
}

// Releases the complete groups of warp collectives of warp w (not activemask).
bool ResolveWarp(LaunchState& L, int w) {
  const int first = w * 32, n = std::min(32, L.nthreads - first);
  const unsigned exist = n == 32 ? 0xffffffffu : (1u << n) - 1;
  unsigned handled = 0;
  bool released = false;
  for (int l = 0; l < n; ++l) {
    Fiber& f = L.fibers[first + l];
    if (f.st != FState::kWarp || f.op->kind == OpKind::kActivemask || (handled >> l & 1)) continue;
    const WarpOp& op = *f.op;
    L.attr_tid = f.tid;
    const unsigned M = op.mask;
    if (!(M >> l & 1)) {
      Throw(absl::StrFormat("%s: %s: the calling lane %d is not in the mask", L.Where(), OpStr(op), l));
    }
    if (M & ~exist) {
      Throw(absl::StrFormat(
          "%s: %s names lanes %s, which do not exist: this warp has %d threads (block %s); use a mask of the "
          "existing lanes",
          L.Where(), OpStr(op), LanesStr(M & ~exist), n, D3(L.cfg->block)));
    }
    bool ready = true;
    unsigned live = 0;
    for (int k = 0; k < 32; ++k) {
      if (!(M >> k & 1)) continue;
      Fiber& fk = L.fibers[first + k];
      if (fk.st == FState::kExited) {
        if (op.kind == OpKind::kSyncwarp) continue;  // exited lanes are not waited for
        Throw(absl::StrFormat("%s: %s: lane %d, named in the mask, exited without joining it", L.Where(), OpStr(op), k));
      }
      if (fk.st == FState::kWarp && fk.op->kind != OpKind::kActivemask) {
        if (!SameCollective(op, *fk.op)) {
          Throw(absl::StrFormat("%s: lanes of a warp disagree: lane %d is at %s, lane %d at %s", L.Where(), l,
                                OpStr(op), k, OpStr(*fk.op)));
        }
        live |= 1u << k;
      } else {
        ready = false;
      }
    }
    if (!ready) continue;
    Execute(L, w, live, op);
    handled |= live;
    released = true;
  }
  L.attr_tid = -1;
  return released;
}

// Describes who waits where (for deadlock reports).
std::string WaitersStr(const LaunchState& L) {
  std::map<std::string, std::vector<int>> groups;
  for (const Fiber& f : L.fibers) {
    std::string key;
    if (f.st == FState::kBarrier) key = absl::StrCat("__syncthreads at ", LocStr(f.loc));
    else if (f.st == FState::kWarp) key = OpStr(*f.op);
    else continue;
    groups[key].push_back(f.tid);
  }
  std::string s;
  for (const auto& [what, tids] : groups) {
    std::string ranges;
    for (size_t i = 0; i < tids.size();) {
      size_t j = i;
      while (j + 1 < tids.size() && tids[j + 1] == tids[j] + 1) ++j;
      absl::StrAppend(&ranges, ranges.empty() ? "" : ", ", tids[i], j > i ? absl::StrCat("-", tids[j]) : "");
      i = j + 1;
    }
    absl::StrAppend(&s, "; threads ", ranges, " wait at ", what);
  }
  return s;
}

// All fibers are blocked or exited: releases something, or fails.
void Resolve(LaunchState& L) {
  bool released = false;
  for (int w = 0; w < L.nwarps; ++w) released |= ResolveWarp(L, w);
  if (released) return;
  int at_barrier = 0, exited = 0, at_warp = 0;
  for (const Fiber& f : L.fibers) {
    at_barrier += f.st == FState::kBarrier;
    exited += f.st == FState::kExited;
    at_warp += f.st == FState::kWarp;
  }
  if (at_barrier > 0 && at_warp == 0) {
    const Fiber* first = nullptr;
    for (const Fiber& f : L.fibers) {
      if (f.st != FState::kBarrier) continue;
      if (!first) {
        first = &f;
      } else if (f.loc.line() != first->loc.line() || std::strcmp(f.loc.file_name(), first->loc.file_name()) != 0) {
        Throw(absl::StrFormat(
            "kernel '%s', block %s: divergent __syncthreads: %s waits at %s, %s at %s (every thread of the block must "
            "reach the same barrier)",
            L.cfg->name, D3(L.block), L.ThreadStr(first->tid), LocStr(first->loc), L.ThreadStr(f.tid), LocStr(f.loc)));
      }
    }
    if (exited > 0) {
      std::vector<int> gone;
      for (const Fiber& f : L.fibers)
        if (f.st == FState::kExited) gone.push_back(f.tid);
      std::string list;
      for (size_t i = 0; i < gone.size() && i < 8; ++i) absl::StrAppend(&list, i ? ", " : "", L.ThreadStr(gone[i]));
      if (gone.size() > 8) absl::StrAppend(&list, " and ", gone.size() - 8, " more");
      Throw(absl::StrFormat(
          "kernel '%s', block %s: barrier not reached by all threads: %d threads wait at the __syncthreads at %s but "
          "%d exited without reaching it (%s)",
          L.cfg->name, D3(L.block), at_barrier, LocStr(first->loc), exited, list));
    }
    ++L.epoch;
    for (auto& e : L.events) e.clear();
    L.have_barrier = true;
    L.last_barrier = first->loc;
    for (Fiber& f : L.fibers) f.st = FState::kRunnable;
    return;
  }
  // activemask: the lanes of a warp waiting at the same call site.
  for (int w = 0; w < L.nwarps; ++w) {
    const int first = w * 32, n = std::min(32, L.nthreads - first);
    for (int l = 0; l < n; ++l) {
      const Fiber& f = L.fibers[first + l];
      if (f.st != FState::kWarp || f.op->kind != OpKind::kActivemask) continue;
      unsigned live = 0;
      for (int k = 0; k < n; ++k) {
        const Fiber& fk = L.fibers[first + k];
        if (fk.st == FState::kWarp && fk.op->kind == OpKind::kActivemask && fk.op->loc.line() == f.op->loc.line() &&
            std::strcmp(fk.op->loc.file_name(), f.op->loc.file_name()) == 0)
          live |= 1u << k;
      }
      Execute(L, w, live, *f.op);
      released = true;
      break;
    }
  }
  if (released) return;
  Throw(absl::StrFormat("kernel '%s', block %s: deadlock: no thread can proceed%s%s", L.cfg->name, D3(L.block),
                        WaitersStr(L), exited ? absl::StrCat("; ", exited, " threads exited") : ""));
}

void ResetRegion(Region* r) {
  std::memset(r->base, 0xff, r->bytes);
  std::fill(r->shadow.begin(), r->shadow.end(), Shadow{});
}

Status RunBlocks(LaunchState& L) {
  const LaunchConfig& cfg = *L.cfg;
  for (unsigned bz = 0; bz < cfg.grid.z; ++bz) {
    for (unsigned by = 0; by < cfg.grid.y; ++by) {
      for (unsigned bx = 0; bx < cfg.grid.x; ++bx) {
        L.block = Dim3(bx, by, bz);
        blockIdx = L.block;
        L.epoch = 0;
        L.clock = 0;
        L.have_barrier = false;
        for (auto& e : L.events) e.clear();
        for (auto& r : L.shared) ResetRegion(r.get());
        for (int t = 0; t < L.nthreads; ++t) {
          Fiber& f = L.fibers[t];
          f.st = FState::kRunnable;
          f.op = nullptr;
          f.open.clear();
          f.groups.clear();
          InitContext(&f.uc, f.stack);
        }
        for (;;) {
          int exited = 0;
          for (Fiber& f : L.fibers) {
            if (f.st == FState::kRunnable) Switch(L, f);
            if (L.failed) return absl::InternalError(L.error);
            exited += f.st == FState::kExited;
          }
          if (exited == L.nthreads) break;
          try {
            Resolve(L);
          } catch (const Fault& e) {
            L.Fail(e.msg);
            return absl::InternalError(L.error);
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

struct ThreadVarsGuard {
  Dim3 t = threadIdx, b = blockIdx, bd = blockDim, gd = gridDim;
  ~ThreadVarsGuard() {
    threadIdx = t;
    blockIdx = b;
    blockDim = bd;
    gridDim = gd;
    t_launch = nullptr;
  }
};

}  // namespace

// ---------------------------------------------------------------------------
// Entry points used by interp.h.

void CheckAccess(const Region* r, const void* p, size_t size, size_t align, Access kind) {
  const size_t off = CheckBounds(r, p, size, align, kind);
  if (r->space == Space::kShared) {
    if (kind == Access::kReadNc) {
      Throw(absl::StrFormat("%s: ldg (ld.global.nc) of %s: not global memory", HereStr(), RegionStr(r)));
    }
    SharedAccess(const_cast<Region*>(r), off, size, kind);
  }
}

void CheckIndex(const Region* r, int64_t i, int64_t n) {
  if (i < 0 || i >= n) {
    Throw(absl::StrFormat("%s: out-of-bounds index %d into a dimension of extent %d of %s", HereStr(), i, n,
                          r ? RegionStr(r) : std::string("a shared array")));
  }
}

void* SharedAlloc(const void* key, const char* name, const char* decl, size_t bytes, const Region** region) {
  LaunchState* L = t_launch;
  if (L == nullptr || L->cur == nullptr) Throw(absl::StrCat("shared array '", name, "' declared outside a kernel"));
  auto it = L->static_shared.find(key);
  if (it == L->static_shared.end()) {
    L->static_bytes += (bytes + 15) / 16 * 16;
    if (L->static_bytes > kStaticSharedLimit) {
      Throw(absl::StrFormat("%s: static shared memory exceeds 48 KiB with '%s' (%s)", L->Where(), name, decl));
    }
    if (L->static_bytes + L->cfg->dynamic_smem > kSharedLimit) {
      Throw(absl::StrFormat("%s: static (%zu bytes) plus dynamic (%zu bytes) shared memory exceed 227 KiB", L->Where(),
                            L->static_bytes, L->cfg->dynamic_smem));
    }
    auto r = std::make_unique<Region>();
    r->base = AlignedAlloc(bytes, 64);
    r->owned = true;
    r->bytes = bytes;
    r->space = Space::kShared;
    r->name = name;
    std::string d = decl;
    d.erase(std::remove(d.begin(), d.end(), ' '), d.end());
    r->decl = d;
    r->shadow.resize(bytes);
    ResetRegion(r.get());
    it = L->static_shared.emplace(key, r.get()).first;
    L->shared.push_back(std::move(r));
  }
  *region = it->second;
  return it->second->base;
}

void* DynamicSharedBase(const Region** region) {
  LaunchState* L = t_launch;
  if (L == nullptr || L->cur == nullptr) Throw("dynamic shared memory used outside a kernel");
  *region = L->dynamic;
  return L->dynamic->base;
}

BufferBase::BufferBase(size_t bytes, std::string name, void* external)
    : data_(external), bytes_(bytes), region_(nullptr), owned_(external == nullptr) {
  if (owned_) {
    data_ = AlignedAlloc(bytes, 256);
    std::memset(data_, 0xff, bytes);
  }
  auto r = std::make_unique<Region>();
  r->base = static_cast<char*>(data_);
  r->bytes = bytes;
  r->space = Space::kGlobal;
  r->name = std::move(name);
  region_ = r.get();
  Regions().Add(std::move(r));
}

BufferBase::~BufferBase() {
  const_cast<Region*>(region_)->dead = true;
  if (owned_) std::free(data_);
}

}  // namespace interp

unsigned lane_id() { return static_cast<unsigned>(interp::CurrentFiber("lane_id").lane); }
unsigned thread_rank() { return static_cast<unsigned>(interp::CurrentFiber("thread_rank").tid); }

using interp::Collective;
using interp::CurrentFiber;
using interp::OpKind;
using interp::WarpOp;

void syncthreads(interp::Loc loc) {
  interp::LaunchState& L = *interp::t_launch;
  interp::Fiber& f = CurrentFiber("syncthreads");
  f.loc = loc;
  f.st = interp::FState::kBarrier;
  interp::Yield(L, f);
}

void syncwarp(unsigned mask, interp::Loc loc) {
  WarpOp op{OpKind::kSyncwarp};
  op.mask = mask;
  op.loc = loc;
  Collective(op);
}

unsigned activemask(interp::Loc loc) {
  WarpOp op{OpKind::kActivemask};
  op.loc = loc;
  return static_cast<unsigned>(Collective(op));
}

namespace {
uint64_t Vote(OpKind kind, unsigned mask, int pred, interp::Loc loc) {
  WarpOp op{kind};
  op.mask = mask;
  op.in = pred != 0;
  op.loc = loc;
  return Collective(op);
}
}  // namespace

unsigned ballot_sync(unsigned mask, int pred, interp::Loc loc) {
  return static_cast<unsigned>(Vote(OpKind::kBallot, mask, pred, loc));
}
int any_sync(unsigned mask, int pred, interp::Loc loc) { return static_cast<int>(Vote(OpKind::kAny, mask, pred, loc)); }
int all_sync(unsigned mask, int pred, interp::Loc loc) { return static_cast<int>(Vote(OpKind::kAll, mask, pred, loc)); }

namespace interp {

uint64_t Shfl(ShflMode mode, unsigned mask, uint64_t bits, int b, int width, Loc loc) {
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
    Throw(absl::StrFormat("%s: shuffle width %d at %s is not a power of two in [1, 32]", HereStr(), width,
                          LocStr(loc)));
  }
  WarpOp op{OpKind::kShfl};
  op.mode = mode;
  op.mask = mask;
  op.in = bits;
  op.b = b;
  op.width = width;
  op.loc = loc;
  return Collective(op);
}

void Mma16816(float* d, const uint32_t* a, const uint32_t* b, const float* c, bool bf16, Loc loc) {
  WarpOp op{OpKind::kMma};
  op.d = d;
  op.a = a;
  op.bfrag = b;
  op.c = c;
  op.bf16 = bf16;
  op.loc = loc;
  Collective(op);
}

void Ldmatrix(uint32_t* r, const void* row, const Region* region, int count, bool trans, Loc loc) {
  WarpOp op{OpKind::kLdmatrix};
  op.regs = r;
  op.addr = static_cast<const char*>(row);
  op.region = region;
  op.count = count;
  op.trans = trans;
  op.loc = loc;
  Collective(op);
}

void CpAsync(void* dst, const Region* dr, const void* src, const Region* sr, int bytes, int src_bytes, Loc loc) {
  LaunchState& L = *t_launch;
  Fiber& f = CurrentFiber("cp_async");
  if (src_bytes < 0 || src_bytes > bytes) {
    Throw(absl::StrFormat("%s: cp.async at %s: src_bytes %d not in [0, %d]", L.Where(), LocStr(loc), src_bytes, bytes));
  }
  if (dr != nullptr && dr->space != Space::kShared) {
    Throw(absl::StrFormat("%s: cp.async at %s: the destination is %s, not shared memory", L.Where(), LocStr(loc),
                          RegionStr(dr)));
  }
  const size_t off = CheckBounds(dr, dst, bytes, bytes, Access::kWrite);
  if (src_bytes > 0 || src != nullptr) {
    if (sr != nullptr && sr->space != Space::kGlobal) {
      Throw(absl::StrFormat("%s: cp.async at %s: the source is %s, not global memory", L.Where(), LocStr(loc),
                            RegionStr(sr)));
    }
    if (src_bytes > 0) CheckBounds(sr, src, src_bytes, 1, Access::kRead);
    if (reinterpret_cast<uintptr_t>(src) % bytes != 0) {
      Throw(absl::StrFormat("%s: cp.async at %s: misaligned %d-byte source in %s", L.Where(), LocStr(loc), bytes,
                            sr ? RegionStr(sr) : std::string("?")));
    }
  }
  Region* d = const_cast<Region*>(dr);
  for (int i = 0; i < bytes; ++i) {
    if (d->shadow[off + i].pending) {
      Throw(absl::StrFormat("%s: cp.async at %s into %s at byte offset %zu while another cp.async into it is in flight",
                            L.Where(), LocStr(loc), RegionStr(dr), off + i));
    }
    d->shadow[off + i].pending = true;
  }
  f.open.push_back({static_cast<char*>(dst), dr, static_cast<const char*>(src), bytes, src_bytes});
}

void CpAsyncCommit() {
  Fiber& f = CurrentFiber("cp_async_commit");
  f.groups.push_back(std::move(f.open));
  f.open.clear();
}

void CpAsyncWait(int n) {
  LaunchState& L = *t_launch;
  Fiber& f = CurrentFiber("cp_async_wait");
  while (static_cast<int>(f.groups.size()) > n) {
    CompleteCopies(L, f.groups.front());
    f.groups.pop_front();
  }
}

Status LaunchImpl(const LaunchConfig& cfg, Body body, void* ctx) {
  const Dim3 b = cfg.block, g = cfg.grid;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  const std::string what = absl::StrCat("launch of '", cfg.name, "' with grid ", D3(g), ", block ", D3(b), ": ");
  if (b.x == 0 || b.y == 0 || b.z == 0 || g.x == 0 || g.y == 0 || g.z == 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, "a dimension is 0"));
  }
  if (threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64) {
    return absl::InvalidArgumentError(absl::StrCat(what, "more than 1024 threads per block (or block.z > 64)"));
  }
  if (g.y > 65535 || g.z > 65535 || g.x > 0x7fffffffu) {
    return absl::InvalidArgumentError(absl::StrCat(what, "grid too large"));
  }
  if (cfg.dynamic_smem > kSharedLimit) {
    return absl::InvalidArgumentError(absl::StrCat(what, cfg.dynamic_smem, " bytes of dynamic shared memory exceed 227 KiB"));
  }
  if (cfg.dynamic_smem > kDefaultDynamicLimit && !cfg.smem_opt_in) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, cfg.dynamic_smem,
        " bytes of dynamic shared memory need cudaFuncSetAttribute(MaxDynamicSharedMemorySize) (set smem_opt_in)"));
  }
  if (t_launch != nullptr) return absl::FailedPreconditionError(absl::StrCat(what, "launched from inside a kernel"));

  LaunchState L;
  ThreadVarsGuard guard;
  L.cfg = &cfg;
  L.body = body;
  L.ctx = ctx;
  L.nthreads = static_cast<int>(threads);
  L.nwarps = (L.nthreads + 31) / 32;
  L.events.resize(L.nwarps);
  L.fibers.resize(L.nthreads);
  for (int t = 0; t < L.nthreads; ++t) {
    Fiber& f = L.fibers[t];
    f.tid = t;
    f.warp = t / 32;
    f.lane = t % 32;
    f.idx = L.IdxOf(t);
    f.stack = t_stacks.Get(t, L.nthreads);
    if (f.stack == nullptr) return absl::ResourceExhaustedError(absl::StrCat(what, "cannot map fiber stacks"));
  }
  {
    auto r = std::make_unique<Region>();
    r->base = AlignedAlloc(cfg.dynamic_smem, 64);
    r->owned = true;
    r->bytes = cfg.dynamic_smem;
    r->space = Space::kShared;
    r->name = "extern __shared__";
    r->shadow.resize(cfg.dynamic_smem);
    L.dynamic = r.get();
    L.shared.push_back(std::move(r));
  }
  blockDim = b;
  gridDim = g;
  t_launch = &L;
  Status st = RunBlocks(L);
  // Shared memory does not outlive the launch; pointers to it that escaped report use after free.
  for (auto& r : L.shared) {
    r->dead = true;
    if (r->owned) std::free(r->base);
    r->owned = false;
    std::vector<Shadow>().swap(r->shadow);
    Regions().Add(std::move(r));
  }
  return st;
}

}  // namespace interp
}  // namespace cf::kd
