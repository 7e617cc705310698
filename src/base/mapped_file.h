// MappedFile: a read-only memory map of a whole file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace meshlm {

class MappedFile {
 public:
  /// Maps `path` read-only. An empty file maps to size 0 and a null data pointer.
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

/// Anonymous memory for large weight copies, on a 2 MiB boundary and marked for
/// transparent huge pages (MADV_HUGEPAGE): a stream over it then crosses no 4 KiB page
/// boundary, where the hardware prefetchers stop, and needs few TLB entries. Zero-filled.
class HugePageBuffer {
 public:
  /// Fails (naming the size and errno) when the memory cannot be mapped.
  static Result<std::unique_ptr<HugePageBuffer>> Allocate(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  HugePageBuffer() = default;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

/// Reads a whole (small) file into a string.
Result<std::string> ReadFileToString(const std::string& path);
bool FileExists(const std::string& path);

}  // namespace meshlm
