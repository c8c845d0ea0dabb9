// Per-node kernel state kept across runs (KernelContext::state): a kernel
// derives something from an input that does not change between runs (a
// parameter: the weight of a linear or conv, packed for the CPU GEMM) once,
// instead of at every call.
#pragma once

#include <memory>
#include <utility>

#include "ops/op.h"

namespace cf {

// The value derived from input `input`, made by make() on the first call and
// kept in ctx.state while `key` (what the value depends on besides the input's
// contents: pointer, sizes, kernel, ...) stays equal. Null when the caller
// keeps no state or the input may change between runs: the kernel then makes
// the value itself for this call.
// Every state stored in KernelContext::state points to one of these (so a
// slot holding another kernel's kind of state is recognised, not misread).
struct KernelStateBase {
  virtual ~KernelStateBase() = default;
};

// The value kept in `slot` (a KernelContext::state, or null for none) while
// `key` stays equal; make() builds it on the first call, or when the key
// changed. Null slot: null (the caller makes the value for this call).
template <typename T, typename Key, typename Make>
const T* KeptState(std::shared_ptr<void>* slot, const Key& key, Make&& make) {
  if (slot == nullptr) return nullptr;
  struct Held : KernelStateBase {
    Held(Key k, T v) : key(std::move(k)), value(std::move(v)) {}
    Key key;
    T value;
  };
  if (*slot != nullptr) {
    auto* held = dynamic_cast<Held*>(static_cast<KernelStateBase*>(slot->get()));
    if (held != nullptr && held->key == key) return &held->value;
  }
  auto held = std::make_shared<Held>(key, make());
  *slot = std::static_pointer_cast<KernelStateBase>(held);  // stored as the base's address
  return &held->value;
}

// KeptState's value when `slot` keeps one, else make() stored in `local`
// (the caller's, alive for this call): the value either way.
template <typename T, typename Key, typename Make>
const T& KeptOrMade(std::shared_ptr<void>* slot, const Key& key, T& local, Make&& make) {
  if (const T* kept = KeptState<T>(slot, key, make)) return *kept;
  local = make();
  return local;
}

// The state slot of the node when input `input` is stable (the same values
// at every run), else null.
inline std::shared_ptr<void>* StableInputSlot(KernelContext& ctx, int input) {
  return ctx.input_is_stable(input) ? ctx.state : nullptr;
}

// The value derived from input `input`, made by make() on the first call and
// kept in ctx.state while `key` (what the value depends on besides the input's
// contents: pointer, sizes, ...) stays equal. Null when the caller keeps no
// state or the input may change between runs: the kernel then makes the
// value itself for this call.
template <typename T, typename Key, typename Make>
const T* StableInputState(KernelContext& ctx, int input, const Key& key, Make&& make) {
  return KeptState<T>(StableInputSlot(ctx, input), key, std::forward<Make>(make));
}

}  // namespace cf
