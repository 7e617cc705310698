// Element-wise reduction kernels (sum, max, min) over every DType.
#pragma once

#include <cstddef>

#include "comm/group.h"

namespace meshlm::comm {

/// dst[i] = op(dst[i], src[i]) for `count` elements. Halves are computed in f32 and
/// rounded to nearest even. Integer sums wrap. dst and src must not overlap.
void ReduceInto(void* dst, const void* src, size_t count, DType dtype, ReduceOp op);

}  // namespace meshlm::comm
