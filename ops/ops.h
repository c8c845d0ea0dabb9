// The builder API of every op family, for model code:
//   #include "ops/ops.h"
//   Value h = Silu(GroupNorm(x, gamma, beta, 32, 1e-5));
#pragma once

#include "ops/activation/activation.h"
#include "ops/attention/attention.h"
#include "ops/conv/conv.h"
#include "ops/core/full.h"
#include "ops/elementwise/elementwise.h"
#include "ops/embed/embed.h"
#include "ops/loss/loss.h"
#include "ops/matmul/matmul.h"
#include "ops/norm/norm.h"
#include "ops/pool/pool.h"
#include "ops/reduce/reduce.h"
#include "ops/shape/shape.h"
