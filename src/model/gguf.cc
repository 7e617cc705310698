// GGUF v3 parsing: header, metadata key/values, tensor infos, data section.
#include "model/gguf.h"

#include <cstring>

namespace meshlm::model {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
// Limits far above any real file, so that a corrupt count fails before any allocation.
constexpr uint64_t kMaxStringBytes = 1ull << 28;
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 3;

// Little-endian reads from [p, end), each checked against the end first.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& path)
      : base_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

  template <typename T>
  Status Read(T* out, const char* what) {
    if (left() < sizeof(T)) {
      return Error("[gguf] '{}': file ends at byte {} inside {} (need {} bytes, {} left)", path_,
                   pos_, what, sizeof(T), left());
    }
    std::memcpy(out, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return OkStatus();
  }

  Status ReadString(std::string* out, uint64_t max_len, const std::string& what) {
    uint64_t len = 0;
    MESHLM_RETURN_IF_ERROR(Read(&len, "a string length"));
    if (len > max_len || len > left()) {
      return Error("[gguf] '{}': {}: string length {} exceeds {} (at byte {}, {} bytes left)",
                   path_, what, len, std::min<uint64_t>(max_len, left()), pos_ - 8, left());
    }
    out->assign(reinterpret_cast<const char*>(base_ + pos_), len);
    pos_ += len;
    return OkStatus();
  }

  Status Skip(uint64_t n, const std::string& what) {
    if (n > left()) return Error("[gguf] '{}': {}: {} bytes beyond the end", path_, what, n);
    pos_ += n;
    return OkStatus();
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

// Bytes of a scalar value type; 0 for string/array (variable) and unknown ids.
size_t ScalarSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64:
      return 8;
    default:
      return 0;
  }
}

bool KnownType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kF64); }

// Reads one scalar of type t into v->i or v->f.
Status ReadScalar(Reader& r, GgufValueType t, const std::string& key, int64_t* i, double* f,
                  const std::string& path) {
  switch (t) {
    case GgufValueType::kU8: {
      uint8_t v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "a u8"));
      *i = v;
      break;
    }
    case GgufValueType::kI8: {
      int8_t v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "an i8"));
      *i = v;
      break;
    }
    case GgufValueType::kU16: {
      uint16_t v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "a u16"));
      *i = v;
      break;
    }
    case GgufValueType::kI16: {
      int16_t v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "an i16"));
      *i = v;
      break;
    }
    case GgufValueType::kU32: {
      uint32_t v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "a u32"));
      *i = v;
      break;
    }
    case GgufValueType::kI32: {
      int32_t v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "an i32"));
      *i = v;
      break;
    }
    case GgufValueType::kI64: {
      int64_t v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "an i64"));
      *i = v;
      break;
    }
    case GgufValueType::kU64: {
      uint64_t v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "a u64"));
      if (v > static_cast<uint64_t>(INT64_MAX)) {
        return Error("[gguf] '{}': metadata '{}': u64 value {} out of range", path, key, v);
      }
      *i = static_cast<int64_t>(v);
      break;
    }
    case GgufValueType::kBool: {
      uint8_t v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "a bool"));
      if (v > 1) return Error("[gguf] '{}': metadata '{}': bool byte {}", path, key, v);
      *i = v;
      break;
    }
    case GgufValueType::kF32: {
      float v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "an f32"));
      *f = v;
      break;
    }
    case GgufValueType::kF64: {
      double v;
      MESHLM_RETURN_IF_ERROR(r.Read(&v, "an f64"));
      *f = v;
      break;
    }
    default:
      return Error("[gguf] '{}': metadata '{}': value type {} is not a scalar", path, key,
                   static_cast<uint32_t>(t));
  }
  return OkStatus();
}

bool IsFloat(GgufValueType t) { return t == GgufValueType::kF32 || t == GgufValueType::kF64; }

Status ReadValue(Reader& r, GgufValueType t, const std::string& key, int depth, GgufValue* v,
                 const std::string& path) {
  v->type = t;
  if (t == GgufValueType::kString)
    return r.ReadString(&v->s, kMaxStringBytes, "metadata '" + key + "'");
  if (t != GgufValueType::kArray) return ReadScalar(r, t, key, &v->i, &v->f, path);
  if (depth >= kMaxArrayDepth) {
    return Error("[gguf] '{}': metadata '{}': arrays nested deeper than {}", path, key,
                 kMaxArrayDepth);
  }
  uint32_t et = 0;
  MESHLM_RETURN_IF_ERROR(r.Read(&et, "an array element type"));
  if (!KnownType(et)) {
    return Error("[gguf] '{}': metadata '{}': unknown array element type {}", path, key, et);
  }
  v->elem_type = static_cast<GgufValueType>(et);
  MESHLM_RETURN_IF_ERROR(r.Read(&v->count, "an array length"));
  // Every element takes at least one byte (strings and arrays at least 8), so a count
  // beyond the bytes left is corrupt, and checking it first bounds the reservation.
  const size_t min_elem = ScalarSize(v->elem_type) ? ScalarSize(v->elem_type) : 8;
  if (v->count > r.left() / min_elem) {
    return Error("[gguf] '{}': metadata '{}': array of {} elements exceeds the {} bytes left", path,
                 key, v->count, r.left());
  }
  if (v->elem_type == GgufValueType::kString) {
    v->strings.resize(v->count);
    for (auto& s : v->strings) {
      MESHLM_RETURN_IF_ERROR(r.ReadString(&s, kMaxStringBytes, "metadata '" + key + "'"));
    }
  } else if (v->elem_type == GgufValueType::kArray) {
    for (uint64_t k = 0; k < v->count; ++k) {
      GgufValue inner;
      MESHLM_RETURN_IF_ERROR(ReadValue(r, GgufValueType::kArray, key, depth + 1, &inner, path));
    }
  } else if (IsFloat(v->elem_type)) {
    v->floats.resize(v->count);
    int64_t unused;
    for (auto& f : v->floats)
      MESHLM_RETURN_IF_ERROR(ReadScalar(r, v->elem_type, key, &unused, &f, path));
  } else {
    v->ints.resize(v->count);
    double unused;
    for (auto& i : v->ints)
      MESHLM_RETURN_IF_ERROR(ReadScalar(r, v->elem_type, key, &i, &unused, path));
  }
  return OkStatus();
}

struct TypeInfo {
  const char* name;
  size_t block_elems, block_bytes;
  std::optional<DType> dtype;
  std::optional<QuantType> quant;
};

std::optional<TypeInfo> GgmlTypeInfo(uint32_t t) {
  switch (t) {
    case kGgmlF32:
      return TypeInfo{"F32", 1, 4, DType::kF32, std::nullopt};
    case kGgmlF16:
      return TypeInfo{"F16", 1, 2, DType::kF16, std::nullopt};
    case kGgmlBF16:
      return TypeInfo{"BF16", 1, 2, DType::kBF16, std::nullopt};
    case kGgmlQ8_0:
      return TypeInfo{"Q8_0", 32, 34, std::nullopt, QuantType::kQ8_0};
    case kGgmlQ4_0:
      return TypeInfo{"Q4_0", 32, 18, std::nullopt, QuantType::kQ4_0};
    case kGgmlQ4_K:
      return TypeInfo{"Q4_K", 256, 144, std::nullopt, QuantType::kQ4_K};
    case kGgmlQ6_K:
      return TypeInfo{"Q6_K", 256, 210, std::nullopt, QuantType::kQ6_K};
    default:
      return std::nullopt;
  }
}

}  // namespace

std::string_view GgufValueTypeName(GgufValueType t) {
  static constexpr const char* kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                           "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

Result<GgufContents> ParseGguf(const uint8_t* data, size_t size, const std::string& path) {
  Reader r(data, size, path);
  GgufContents c;
  uint32_t magic = 0;
  MESHLM_RETURN_IF_ERROR(r.Read(&magic, "the magic"));
  if (magic != kMagic) {
    return Error("[gguf] '{}': not a GGUF file (magic {:#010x}, expected {:#010x} \"GGUF\")", path,
                 magic, kMagic);
  }
  MESHLM_RETURN_IF_ERROR(r.Read(&c.version, "the version"));
  if (c.version != 3) {
    return Error(
        "[gguf] '{}': GGUF version {} unsupported (only version 3); re-convert the "
        "model with a current converter",
        path, c.version);
  }
  uint64_t n_tensors = 0, n_kv = 0;
  MESHLM_RETURN_IF_ERROR(r.Read(&n_tensors, "the tensor count"));
  MESHLM_RETURN_IF_ERROR(r.Read(&n_kv, "the metadata count"));
  // A key/value takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 8 + 4 + 8.
  if (n_kv > r.left() / 13 || n_tensors > r.left() / 32) {
    return Error("[gguf] '{}': {} metadata entries and {} tensors cannot fit in {} bytes", path,
                 n_kv, n_tensors, size);
  }
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key;
    MESHLM_RETURN_IF_ERROR(r.ReadString(&key, kMaxKeyBytes, fmt::format("metadata key #{}", k)));
    uint32_t type = 0;
    MESHLM_RETURN_IF_ERROR(r.Read(&type, "a metadata value type"));
    if (!KnownType(type)) {
      return Error("[gguf] '{}': metadata '{}': unknown value type {}", path, key, type);
    }
    GgufValue v;
    MESHLM_RETURN_IF_ERROR(ReadValue(r, static_cast<GgufValueType>(type), key, 0, &v, path));
    if (!c.metadata.emplace(key, std::move(v)).second) {
      return Error("[gguf] '{}': metadata key '{}' appears twice", path, key);
    }
  }
  if (auto it = c.metadata.find("general.alignment"); it != c.metadata.end()) {
    const GgufValue& a = it->second;
    if (a.type != GgufValueType::kU32 || a.i == 0 || (a.i & (a.i - 1)) != 0 || a.i > 65536) {
      return Error("[gguf] '{}': general.alignment must be a u32 power of two up to 65536", path);
    }
    c.alignment = static_cast<size_t>(a.i);
  }
  struct Pending {
    uint64_t offset;
  };
  std::vector<Pending> offsets;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    MESHLM_RETURN_IF_ERROR(r.ReadString(&t.name, kMaxKeyBytes, fmt::format("tensor #{} name", k)));
    uint32_t n_dims = 0;
    MESHLM_RETURN_IF_ERROR(r.Read(&n_dims, "a tensor's dimension count"));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return Error("[gguf] '{}': tensor '{}': {} dimensions (1 to {} allowed)", path, t.name,
                   n_dims, kMaxDims);
    }
    t.dims.resize(n_dims);
    uint64_t numel = 1;
    for (auto& d : t.dims) {
      MESHLM_RETURN_IF_ERROR(r.Read(&d, "a tensor dimension"));
      if (d == 0 || d > (1ull << 40) || numel > (1ull << 40) / d) {
        return Error("[gguf] '{}': tensor '{}': dimension {} zero or too large", path, t.name, d);
      }
      numel *= d;
    }
    MESHLM_RETURN_IF_ERROR(r.Read(&t.type, "a tensor type"));
    const auto info = GgmlTypeInfo(t.type);
    if (!info) {
      return Error(
          "[gguf] '{}': tensor '{}': type {} unsupported (supported: F32, F16, BF16, "
          "Q8_0, Q4_0, Q4_K, Q6_K)",
          path, t.name, t.type);
    }
    if (t.dims[0] % info->block_elems != 0) {
      return Error(
          "[gguf] '{}': tensor '{}': row length {} is not a multiple of the {} block "
          "of {}",
          path, t.name, t.dims[0], info->name, info->block_elems);
    }
    t.nbytes = numel / info->block_elems * info->block_bytes;
    t.dtype = info->dtype;
    t.quant = info->quant;
    uint64_t offset = 0;
    MESHLM_RETURN_IF_ERROR(r.Read(&offset, "a tensor offset"));
    if (offset % c.alignment != 0) {
      return Error("[gguf] '{}': tensor '{}': offset {} not a multiple of the alignment {}", path,
                   t.name, offset, c.alignment);
    }
    if (!c.tensor_index.emplace(t.name, c.tensors.size()).second) {
      return Error("[gguf] '{}': tensor '{}' appears twice", path, t.name);
    }
    offsets.push_back({offset});
    c.tensors.push_back(std::move(t));
  }
  const size_t data_start = (r.pos() + c.alignment - 1) / c.alignment * c.alignment;
  if (data_start > size && !c.tensors.empty()) {
    return Error("[gguf] '{}': tensor data would start at byte {} beyond the file ({} bytes)", path,
                 data_start, size);
  }
  const size_t data_size = data_start <= size ? size - data_start : 0;
  for (size_t k = 0; k < c.tensors.size(); ++k) {
    GgufTensor& t = c.tensors[k];
    const uint64_t off = offsets[k].offset;
    if (off > data_size || t.nbytes > data_size - off) {
      return Error(
          "[gguf] '{}': tensor '{}': data [{}, {}) lies beyond the end of the file "
          "(data section of {} bytes); the file is truncated or corrupt",
          path, t.name, off, off + t.nbytes, data_size);
    }
    t.data = data + data_start + off;
  }
  return c;
}

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  MESHLM_ASSIGN_OR_RETURN(f->file_, MappedFile::Open(path));
  MESHLM_ASSIGN_OR_RETURN(f->contents_, ParseGguf(f->file_->data(), f->file_->size(), path));
  return f;
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = contents_.metadata.find(key);
  return it == contents_.metadata.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::FindTensor(const std::string& name) const {
  auto it = contents_.tensor_index.find(name);
  return it == contents_.tensor_index.end() ? nullptr : &contents_.tensors[it->second];
}

namespace {
bool IsInt(GgufValueType t) {
  return ScalarSize(t) != 0 && !IsFloat(t) && t != GgufValueType::kBool;
}
}  // namespace

Result<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Error("[gguf] '{}': metadata '{}' missing", path(), key);
  if (!IsInt(v->type)) {
    return Error("[gguf] '{}': metadata '{}' has type {}, expected an integer", path(), key,
                 GgufValueTypeName(v->type));
  }
  return v->i;
}

Result<int64_t> GgufFile::GetInt(const std::string& key, int64_t fallback) const {
  if (Find(key) == nullptr) return fallback;
  return GetInt(key);
}

Result<double> GgufFile::GetFloat(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Error("[gguf] '{}': metadata '{}' missing", path(), key);
  if (IsFloat(v->type)) return v->f;
  if (IsInt(v->type)) return static_cast<double>(v->i);
  return Error("[gguf] '{}': metadata '{}' has type {}, expected a number", path(), key,
               GgufValueTypeName(v->type));
}

Result<double> GgufFile::GetFloat(const std::string& key, double fallback) const {
  if (Find(key) == nullptr) return fallback;
  return GetFloat(key);
}

Result<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Error("[gguf] '{}': metadata '{}' missing", path(), key);
  if (v->type != GgufValueType::kString) {
    return Error("[gguf] '{}': metadata '{}' has type {}, expected a string", path(), key,
                 GgufValueTypeName(v->type));
  }
  return v->s;
}

Result<bool> GgufFile::GetBool(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Error("[gguf] '{}': metadata '{}' missing", path(), key);
  if (v->type != GgufValueType::kBool) {
    return Error("[gguf] '{}': metadata '{}' has type {}, expected a bool", path(), key,
                 GgufValueTypeName(v->type));
  }
  return v->i != 0;
}

namespace {
Status CheckArray(const GgufValue* v, const std::string& path, const std::string& key,
                  const char* kind, bool ok_elem) {
  if (v == nullptr) return Error("[gguf] '{}': metadata '{}' missing", path, key);
  if (v->type != GgufValueType::kArray || !ok_elem) {
    return Error("[gguf] '{}': metadata '{}' has type {}{}{}, expected an array of {}", path, key,
                 GgufValueTypeName(v->type), v->type == GgufValueType::kArray ? " of " : "",
                 v->type == GgufValueType::kArray ? GgufValueTypeName(v->elem_type) : "", kind);
  }
  return OkStatus();
}
}  // namespace

Result<const std::vector<std::string>*> GgufFile::GetStrings(const std::string& key) const {
  const GgufValue* v = Find(key);
  MESHLM_RETURN_IF_ERROR(
      CheckArray(v, path(), key, "strings", v && v->elem_type == GgufValueType::kString));
  return &v->strings;
}

Result<const std::vector<int64_t>*> GgufFile::GetInts(const std::string& key) const {
  const GgufValue* v = Find(key);
  MESHLM_RETURN_IF_ERROR(CheckArray(v, path(), key, "integers", v && IsInt(v->elem_type)));
  return &v->ints;
}

Result<const std::vector<double>*> GgufFile::GetFloats(const std::string& key) const {
  const GgufValue* v = Find(key);
  MESHLM_RETURN_IF_ERROR(CheckArray(v, path(), key, "floats", v && IsFloat(v->elem_type)));
  return &v->floats;
}

}  // namespace meshlm::model
