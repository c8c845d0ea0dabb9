// Count, mean and M2 (sum of squared deviations from the mean) of a set of
// numbers. Two sets merge exactly (Chan, Golub and LeVeque), so statistics of
// chunks combine without the cancellation of sum / sum-of-squares formulas:
// the normalisation kernels use this to reduce large groups (e.g. 128x128x10
// elements per group) accurately in f32. Usable on the host and the device.
#pragma once

#include "runtime/dtype.h"  // CF_HD

namespace cf {

template <typename A>
struct Moments {
  A count;
  A mean;
  A m2;
};

template <typename A>
CF_HD Moments<A> CombineMoments(const Moments<A>& a, const Moments<A>& b) {
  const A n = a.count + b.count;
  if (n == A(0)) return a;
  const A delta = b.mean - a.mean;
  const A fb = b.count / n;
  return {n, a.mean + delta * fb, a.m2 + b.m2 + delta * delta * a.count * fb};
}

}  // namespace cf
