// GGUF v3 files: a bounds-checked parser of the header, metadata and tensor infos over an
// mmap, with typed metadata accessors.
//
// Goals: never trust the file — every count, length, type id and offset is checked
// before it is used or allocated, and every error names the file and the item. Tensor
// data stays in the map. Non-goals: writing GGUF (tools/write_gguf.py does that), GGUF
// v1/v2, tensor types other than F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/mapped_file.h"
#include "base/status.h"
#include "base/dtype.h"
#include "tensor/quant.h"

namespace meshlm::model {

enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
std::string_view GgufValueTypeName(GgufValueType t);

/// One metadata value. Integers (and bools) are held in `i`, floats in `f`, strings in
/// `s`; arrays hold their element type and the elements in `ints`, `floats` or
/// `strings` (arrays of arrays are parsed and checked but their elements not kept).
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  int64_t i = 0;
  double f = 0;
  std::string s;
  GgufValueType elem_type = GgufValueType::kU8;
  uint64_t count = 0;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
};

// Tensor type ids of the ggml library that GGUF files use.
constexpr uint32_t kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8, kGgmlQ4_K = 12,
                   kGgmlQ6_K = 14, kGgmlBF16 = 30;

struct GgufTensor {
  std::string name;
  uint32_t type = 0;              // ggml type id, one of the supported ones above
  std::vector<uint64_t> dims;     // ne0 first: dims[0] is the length of a row
  const uint8_t* data = nullptr;  // into the map
  size_t nbytes = 0;
  /// The dense dtype for F32/F16/BF16; empty for block types.
  std::optional<DType> dtype;
  /// The block layout for Q8_0/Q4_0/Q4_K/Q6_K; empty for dense types.
  std::optional<QuantType> quant;
};

struct GgufContents {
  uint32_t version = 0;
  size_t alignment = 32;
  std::map<std::string, GgufValue> metadata;
  std::vector<GgufTensor> tensors;  // in file order
  std::map<std::string, size_t> tensor_index;
};

/// Parses a whole GGUF file held in memory; `path` names it in errors. Exposed for
/// fuzzing. Pointers in the result point into `data`.
Result<GgufContents> ParseGguf(const uint8_t* data, size_t size, const std::string& path);

/// A mapped and parsed GGUF file.
class GgufFile {
 public:
  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path);

  const GgufContents& contents() const { return contents_; }
  const std::string& path() const { return file_->path(); }

  /// Null when absent.
  const GgufValue* Find(const std::string& key) const;
  const GgufTensor* FindTensor(const std::string& name) const;

  // Typed metadata: an error naming the key when absent or of another type.
  Result<int64_t> GetInt(const std::string& key) const;
  Result<double> GetFloat(const std::string& key) const;  // accepts integers too
  Result<std::string> GetString(const std::string& key) const;
  Result<bool> GetBool(const std::string& key) const;
  /// The value when present (with the type checked), `fallback` when absent.
  Result<int64_t> GetInt(const std::string& key, int64_t fallback) const;
  Result<double> GetFloat(const std::string& key, double fallback) const;
  /// An array of the given kind: strings, integers or floats.
  Result<const std::vector<std::string>*> GetStrings(const std::string& key) const;
  Result<const std::vector<int64_t>*> GetInts(const std::string& key) const;
  Result<const std::vector<double>*> GetFloats(const std::string& key) const;

 private:
  std::unique_ptr<MappedFile> file_;
  GgufContents contents_;
};

}  // namespace meshlm::model
