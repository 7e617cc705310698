// Safetensors parsing and folder loading.
#include "model/safetensors.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

namespace meshlm::model {

using nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// Largest header we accept; real headers are a few hundred kB at most.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

Result<std::map<std::string, TensorInfo>> ParseSafetensors(const uint8_t* data, size_t size,
                                                           const std::string& path) {
  if (size < 8) return Error("[safetensors] '{}': file of {} bytes is too short", path, size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);  // little-endian on every platform we build for
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    return Error("[safetensors] '{}': header length {} exceeds the file ({} bytes)", path,
                 header_len, size);
  }
  json header;
  try {
    header = json::parse(data + 8, data + 8 + header_len);
  } catch (const json::exception& e) {
    return Error("[safetensors] '{}': header is not valid JSON: {}", path, e.what());
  }
  if (!header.is_object()) return Error("[safetensors] '{}': header is not a JSON object", path);
  const uint8_t* base = data + 8 + header_len;
  const size_t data_size = size - 8 - header_len;
  std::map<std::string, TensorInfo> out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets") || !entry["dtype"].is_string() ||
        !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      return Error("[safetensors] '{}': tensor '{}' needs dtype, shape and two data_offsets", path,
                   name);
    }
    TensorInfo t;
    t.name = name;
    t.file = path;
    const std::string dtype = entry["dtype"].get<std::string>();
    const auto dt = DTypeFromSafetensors(dtype);
    if (!dt)
      return Error("[safetensors] '{}': tensor '{}': dtype {} unsupported", path, name, dtype);
    t.dtype = *dt;
    uint64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
        return Error("[safetensors] '{}': tensor '{}': bad shape {}", path, name,
                     entry["shape"].dump());
      }
      const uint64_t v = d.get<uint64_t>();
      if (v > (1ull << 40) || (v != 0 && numel > (1ull << 40) / v)) {
        return Error("[safetensors] '{}': tensor '{}': shape {} too large", path, name,
                     entry["shape"].dump());
      }
      numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    const auto& offs = entry["data_offsets"];
    if (!offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) {
      return Error("[safetensors] '{}': tensor '{}': data_offsets must be non-negative integers",
                   path, name);
    }
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return Error(
          "[safetensors] '{}': tensor '{}': data [{}, {}) lies beyond the data section "
          "of {} bytes (file truncated?)",
          path, name, begin, end, data_size);
    }
    if (end - begin != numel * DTypeSize(t.dtype)) {
      return Error("[safetensors] '{}': tensor '{}': {} bytes for shape {} of {} (expected {})",
                   path, name, end - begin, ShapeString(t.shape), dtype,
                   numel * DTypeSize(t.dtype));
    }
    t.data = base + begin;
    t.nbytes = end - begin;
    out.emplace(name, std::move(t));
  }
  return out;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  MESHLM_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path));
  MESHLM_ASSIGN_OR_RETURN(auto tensors, ParseSafetensors(mapped->data(), mapped->size(), path));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->file_ = std::move(mapped);
  f->tensors_ = std::move(tensors);
  return f;
}

Result<std::unique_ptr<TensorStore>> TensorStore::Open(const std::string& dir) {
  std::unique_ptr<TensorStore> store(new TensorStore());
  store->dir_ = dir;
  std::vector<std::string> files;
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (FileExists(index_path)) {
    MESHLM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
    json index;
    try {
      index = json::parse(text);
    } catch (const json::exception& e) {
      return Error("[safetensors] '{}' is not valid JSON: {}", index_path, e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      return Error("[safetensors] '{}' has no weight_map object", index_path);
    }
    std::set<std::string> seen;
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string())
        return Error("[safetensors] '{}': entry '{}' is not a file name", index_path, name);
      const std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f.empty() || f[0] == '.') {
        return Error("[safetensors] '{}': shard name '{}' must be a plain file name", index_path,
                     f);
      }
      if (seen.insert(f).second) files.push_back(f);
    }
    for (const auto& f : files) {
      if (!FileExists(dir + "/" + f)) {
        return Error("[safetensors] '{}' names shard '{}', which is missing from {}", index_path, f,
                     dir);
      }
    }
  } else if (FileExists(dir + "/model.safetensors")) {
    files.push_back("model.safetensors");
  } else {
    return Error("[safetensors] no model.safetensors or model.safetensors.index.json in '{}'", dir);
  }
  for (const auto& f : files) {
    MESHLM_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir + "/" + f));
    for (const auto& [name, info] : file->tensors()) {
      if (!store->tensors_.emplace(name, info).second) {
        return Error("[safetensors] tensor '{}' appears in more than one shard of '{}'", name, dir);
      }
    }
    store->files_.push_back(std::move(file));
  }
  return store;
}

std::unique_ptr<TensorStore> TensorStore::FromTensors(std::string dir,
                                                      std::map<std::string, TensorInfo> tensors) {
  std::unique_ptr<TensorStore> s(new TensorStore());
  s->dir_ = std::move(dir);
  s->tensors_ = std::move(tensors);
  return s;
}

const TensorInfo* TensorStore::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Result<const TensorInfo*> TensorStore::Get(const std::string& name) const {
  const TensorInfo* t = Find(name);
  if (t == nullptr) return Error("[model] tensor '{}' not found in '{}'", name, dir_);
  return t;
}

}  // namespace meshlm::model
