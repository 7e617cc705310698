// Safetensors files and model folders: header parsing and zero-copy tensor access.
//
// A TensorStore maps every tensor name of a Hugging Face folder (one model.safetensors,
// or shards listed by model.safetensors.index.json) to its bytes inside an mmap'd file.
// Nothing is copied: a tensor's data pointer points into the map.
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

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mmap'd file
  size_t nbytes = 0;
  /// False when data is a copy in memory (a GGUF tensor reordered at load), whose pages
  /// must not be dropped the way a file map's can.
  bool mapped = true;
  std::string file;  // the file it came from, for error messages
  /// Set for GGUF block-quantized tensors (dtype is then kU8 and shape the logical
  /// [rows, cols] of the weights).
  std::optional<QuantType> quant;

  int64_t numel() const;
};

/// One parsed .safetensors file.
class SafetensorsFile {
 public:
  /// Maps and validates `path`: header length within the file, well-formed JSON, known
  /// dtypes, offsets inside the data section and consistent with shape × dtype size.
  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }

 private:
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorInfo> tensors_;
};

/// Parses a safetensors header from `data` (the whole file) — exposed for fuzzing.
Result<std::map<std::string, TensorInfo>> ParseSafetensors(const uint8_t* data, size_t size,
                                                           const std::string& path);

/// All tensors of a model folder.
class TensorStore {
 public:
  /// Opens DIR/model.safetensors, or the shards named by DIR/model.safetensors.index.json.
  static Result<std::unique_ptr<TensorStore>> Open(const std::string& dir);
  /// A store over tensors whose bytes someone else keeps alive (a GGUF file); `dir`
  /// names it in errors.
  static std::unique_ptr<TensorStore> FromTensors(std::string dir,
                                                  std::map<std::string, TensorInfo> tensors);
  /// Null when absent.
  const TensorInfo* Find(const std::string& name) const;
  /// An error naming the tensor and folder when absent.
  Result<const TensorInfo*> Get(const std::string& name) const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorInfo> tensors_;
};

}  // namespace meshlm::model
