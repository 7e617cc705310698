// Element types of tensors and scalar conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace meshlm {

// New values go last: the numbers travel in messages between ranks.
// kU32 holds MLX's packed quantized weights.
enum class DType : uint8_t { kF32, kF16, kBF16, kI32, kI64, kU8, kU32 };

/// Bytes per element.
size_t DTypeSize(DType t);
std::string_view DTypeName(DType t);
/// Parses a safetensors dtype string ("F32", "F16", "BF16", "I32", "I64", "U8", "U32").
std::optional<DType> DTypeFromSafetensors(std::string_view s);

inline float BF16ToF32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// Round to nearest even, NaN kept as quiet NaN.
inline uint16_t F32ToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

}  // namespace meshlm
