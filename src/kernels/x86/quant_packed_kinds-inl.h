// The weight kinds of the packed layout (tensor/quant.h) as the packed x86 kernels see
// them, their byte counts per block, and the dispatch from a matrix to its kind. Included
// inside each kernel file's anonymous namespace, under that file's target pragma.

enum Kind { kKindQ8, kKindQ4, kKindMlx4F16, kKindMlx4BF16, kKindQ4K, kKindQ6K };

template <Kind kKind>
struct KindTraits {
  static constexpr bool kQ8 = kKind == kKindQ8, kQ6 = kKind == kKindQ6K;
  // Kinds with a bias per block (w = scale · q + bias).
  static constexpr bool kBias =
      kKind == kKindMlx4F16 || kKind == kKindMlx4BF16 || kKind == kKindQ4K;
  static constexpr size_t kQB = kQ8 || kQ6 ? 512 : 256;  // quant bytes per block and group
  static constexpr size_t kPB = kKind == kKindQ4K || kQ6 ? 128 : kBias ? 64 : 32;  // params
  static constexpr size_t kPair = 2 * (kPB + kQB);  // two blocks' parameters, then their quants
};

// Calls fn(std::integral_constant<Kind, k>{}) with w's kind.
template <class Fn>
inline void WithKind(const Matrix& w, Fn&& fn) {
  switch (*w.quant) {
    case QuantType::kQ8_0:
      return fn(std::integral_constant<Kind, kKindQ8>{});
    case QuantType::kQ4_0:
      return fn(std::integral_constant<Kind, kKindQ4>{});
    case QuantType::kQ4_K:
      return fn(std::integral_constant<Kind, kKindQ4K>{});
    case QuantType::kQ6_K:
      return fn(std::integral_constant<Kind, kKindQ6K>{});
    default:
      if (w.scale_dtype == DType::kBF16) return fn(std::integral_constant<Kind, kKindMlx4BF16>{});
      return fn(std::integral_constant<Kind, kKindMlx4F16>{});
  }
}
