// MappedFile and small file helpers.
#include "base/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace meshlm {

Result<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error("[file] cannot open '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error("[file] '{}' is not a regular file", path);
  }
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return Error("[file] cannot map '{}' ({} bytes): {}", path, f->size_, std::strerror(errno));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

Result<std::unique_ptr<HugePageBuffer>> HugePageBuffer::Allocate(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  std::unique_ptr<HugePageBuffer> b(new HugePageBuffer());
  if (bytes == 0) return b;
  // Map a huge page more, so that the data can start on a huge-page boundary.
  b->map_size_ = (bytes + kHuge - 1) / kHuge * kHuge + kHuge;
  void* p =
      ::mmap(nullptr, b->map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return Error("[memory] cannot map {} bytes for weights: {}", bytes, std::strerror(errno));
  }
  b->map_ = p;
  const uintptr_t start = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) / kHuge * kHuge;
  b->data_ = reinterpret_cast<uint8_t*>(start);
  b->size_ = bytes;
  // Advice only: without transparent huge pages the memory is still usable.
  ::madvise(b->data_, (bytes + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);
  return b;
}

HugePageBuffer::~HugePageBuffer() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

Result<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error("[file] cannot open '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace meshlm
