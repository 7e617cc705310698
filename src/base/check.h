// MESHLM_CHECK: aborts with file:line and a message. For our own bugs only, never for
// outside input (use Status for that).
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#define MESHLM_CHECK(cond, ...)                                                                 \
  do {                                                                                          \
    if (!(cond)) [[unlikely]] {                                                                 \
      std::fprintf(stderr, "meshlm: check failed at %s:%d: %s %s\n", __FILE__, __LINE__, #cond, \
                   fmt::format("" __VA_ARGS__).c_str());                                        \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)
