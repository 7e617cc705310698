// Model manifests: sizes and SHA-256 of a model's files, with a size+mtime-validated cache.
#include "cluster/manifest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/progress.h"

namespace meshlm::cluster {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr const char* kManifestSuffix = ".meshlm-manifest.json";
constexpr const char* kPartSuffix = ".meshlm-part";
// A file modified this recently may change again within the same mtime tick (kernel
// timestamps are coarse), so its hash is not cached: the next build hashes it again.
constexpr int64_t kRacyNs = 2'000'000'000;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Hex(const unsigned char* d, unsigned n) {
  static const char* k = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned i = 0; i < n; ++i) {
    out[2 * i] = k[d[i] >> 4];
    out[2 * i + 1] = k[d[i] & 15];
  }
  return out;
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string HomeCachePath(const std::string& model_path) {
  const char* home = std::getenv("HOME");
  if (!home || !*home) return "";
  std::error_code ec;
  const fs::path canon = fs::weakly_canonical(fs::absolute(model_path, ec), ec);
  return std::string(home) + "/.cache/meshlm/manifests/" + Sha256Hex(canon.string()).substr(0, 32) +
         ".json";
}

// Cached entries by path; an unreadable cache yields none and a note.
std::map<std::string, ManifestFile> ReadCache(const std::string& path, std::string* note) {
  std::map<std::string, ManifestFile> out;
  std::ifstream in(path);
  if (!in) return out;
  std::stringstream ss;
  ss << in.rdbuf();
  auto m = ManifestFromJson(ss.str(), path);
  if (!m.ok()) {
    *note = m.status().message() + "; rebuilt it";
    return out;
  }
  for (ManifestFile& f : m->files) out[f.path] = std::move(f);
  return out;
}

bool WriteAtomically(const std::string& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = fmt::format("{}.{}.tmp", path, getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return false;
    out << text;
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

std::string Sha256Hex(const std::string& bytes) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(bytes.data(), bytes.size(), d, &n, EVP_sha256(), nullptr);
  return Hex(d, n);
}

Result<std::string> Sha256File(const std::string& path, Progress* progress) {
  // O_DIRECT where the filesystem allows it: hashing a model must neither evict what the
  // page cache holds nor fill it with pages (large folios) that the loader's mmap would
  // then map whole, inflating every rank's resident set.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  bool direct = fd >= 0;
  if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error("[manifest] cannot open '{}': {}", path, std::strerror(errno));
  if (!direct) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  constexpr size_t kChunk = size_t{8} << 20;
  std::unique_ptr<char, decltype(&std::free)> buf(
      static_cast<char*>(std::aligned_alloc(4096, kChunk)), &std::free);
  off_t offset = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf.get(), kChunk, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && direct) {  // O_DIRECT refused at read time: plain reads
      ::close(fd);
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Error("[manifest] cannot open '{}': {}", path, std::strerror(errno));
      direct = false;
      continue;
    }
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return Error("[manifest] reading '{}': {}", path, std::strerror(e));
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.get(), static_cast<size_t>(n));
    offset += n;
    if (progress != nullptr) progress->Add(static_cast<size_t>(n));
    // A short O_DIRECT read ends at EOF or an unaligned tail; carry on with plain reads.
    if (direct && (n % 4096) != 0) {
      ::close(fd);
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Error("[manifest] cannot open '{}': {}", path, std::strerror(errno));
      direct = false;
    }
  }
  ::close(fd);
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), d, &len);
  return Hex(d, len);
}

std::string ManifestDigest(const std::vector<ManifestFile>& files) {
  std::string text;
  for (const ManifestFile& f : files) {
    text += fmt::format("{}\t{}\t{}\n", f.path, f.size, f.sha256);
  }
  return Sha256Hex(text);
}

std::string ManifestCachePath(const std::string& model_path) {
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) return (fs::path(model_path) / kManifestSuffix).string();
  return model_path + kManifestSuffix;
}

std::string ManifestToJson(const Manifest& m) {
  Json files = Json::array();
  for (const ManifestFile& f : m.files) {
    files.push_back(
        {{"path", f.path}, {"size", f.size}, {"mtime_ns", f.mtime_ns}, {"sha256", f.sha256}});
  }
  return Json{{"format", "meshlm-manifest"}, {"version", 1}, {"digest", m.digest}, {"files", files}}
      .dump(1);
}

Result<Manifest> ManifestFromJson(const std::string& text, const std::string& source) {
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error("[manifest] '{}' is not valid JSON", source);
  if (!j.is_object() || j.value("format", "") != "meshlm-manifest" || !j.contains("files") ||
      !j["files"].is_array()) {
    return Error(
        "[manifest] '{}': not a meshlm manifest (expected \"format\": "
        "\"meshlm-manifest\" and a \"files\" list)",
        source);
  }
  Manifest m;
  for (size_t i = 0; i < j["files"].size(); ++i) {
    const Json& e = j["files"][i];
    if (!e.is_object() || !e.contains("path") || !e["path"].is_string() || !e.contains("size") ||
        !e["size"].is_number_unsigned() || !e.contains("sha256") || !e["sha256"].is_string() ||
        e["sha256"].get<std::string>().size() != 64) {
      return Error(
          "[manifest] '{}': files[{}] needs \"path\" (string), \"size\" (integer >= 0) "
          "and \"sha256\" (64 hex digits)",
          source, i);
    }
    ManifestFile f;
    f.path = e["path"].get<std::string>();
    f.size = e["size"].get<uint64_t>();
    f.sha256 = e["sha256"].get<std::string>();
    if (e.contains("mtime_ns") && e["mtime_ns"].is_number_integer()) {
      f.mtime_ns = e["mtime_ns"].get<int64_t>();
    }
    if (f.path.empty() || f.path[0] == '/' || f.path.find("..") != std::string::npos) {
      return Error("[manifest] '{}': files[{}].path '{}' must be relative, without '..'", source, i,
                   f.path);
    }
    m.total_bytes += f.size;
    m.files.push_back(std::move(f));
  }
  std::sort(m.files.begin(), m.files.end(),
            [](const ManifestFile& a, const ManifestFile& b) { return a.path < b.path; });
  m.digest = ManifestDigest(m.files);
  return m;
}

Result<Manifest> BuildManifest(const std::string& model_path, const ManifestOptions& o) {
  std::error_code ec;
  const fs::file_status st = fs::status(model_path, ec);
  if (ec || !fs::exists(st)) return Error("[manifest] model '{}' does not exist", model_path);
  const bool is_dir = fs::is_directory(st);
  if (!is_dir && !fs::is_regular_file(st)) {
    return Error("[manifest] model '{}' is neither a folder nor a regular file", model_path);
  }
  // (relative path, absolute path) of every file.
  std::vector<std::pair<std::string, std::string>> paths;
  if (is_dir) {
    fs::recursive_directory_iterator it(model_path, fs::directory_options::skip_permission_denied,
                                        ec);
    if (ec) return Error("[manifest] cannot list '{}': {}", model_path, ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) return Error("[manifest] listing '{}': {}", model_path, ec.message());
      const std::string name = it->path().filename().string();
      // Hidden entries (.git, .cache/huggingface, our caches) are not the model, and differ
      // between copies of the same model.
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec) || EndsWith(name, kPartSuffix) ||
          name.find(kManifestSuffix) != std::string::npos) {  // a .gguf's cache, its temp files
        continue;
      }
      paths.emplace_back(fs::relative(it->path(), model_path, ec).generic_string(),
                         it->path().string());
    }
  } else {
    paths.emplace_back(fs::path(model_path).filename().string(), model_path);
  }
  std::sort(paths.begin(), paths.end());

  Manifest m;
  const std::string beside = ManifestCachePath(model_path);
  const std::string home = HomeCachePath(model_path);
  std::map<std::string, ManifestFile> cache;
  if (!o.rehash) {
    cache = ReadCache(beside, &m.note);
    if (cache.empty() && !home.empty()) cache = ReadCache(home, &m.note);
  }
  const int64_t now = NowNs();
  std::vector<ManifestFile> to_cache;
  // Sizes and times first, so the progress bar knows how much is to be hashed.
  std::vector<ManifestFile> files;
  std::vector<bool> cached_ok;
  size_t to_hash = 0;
  for (const auto& [rel, abs] : paths) {
    struct stat sb {};
    if (::stat(abs.c_str(), &sb) != 0) {
      return Error("[manifest] cannot stat '{}': {}", abs, std::strerror(errno));
    }
    ManifestFile f;
    f.path = rel;
    f.size = static_cast<uint64_t>(sb.st_size);
    f.mtime_ns = int64_t{sb.st_mtim.tv_sec} * 1'000'000'000 + sb.st_mtim.tv_nsec;
    auto hit = cache.find(rel);
    const bool ok = hit != cache.end() && hit->second.size == f.size &&
                    hit->second.mtime_ns == f.mtime_ns && f.mtime_ns != 0;
    if (ok) f.sha256 = hit->second.sha256;
    if (!ok) to_hash += f.size;
    cached_ok.push_back(ok);
    files.push_back(std::move(f));
  }
  Progress progress("hashing", to_hash, o.show_progress);
  for (size_t i = 0; i < files.size(); ++i) {
    ManifestFile& f = files[i];
    if (!cached_ok[i]) {
      MESHLM_ASSIGN_OR_RETURN(f.sha256, Sha256File(paths[i].second, &progress));
      ++m.hashed_files;
      m.hashed_bytes += f.size;
    }
    ManifestFile cached = f;
    if (now - f.mtime_ns < kRacyNs) cached.mtime_ns = 0;  // never trusted: hashed again
    to_cache.push_back(std::move(cached));
    m.total_bytes += f.size;
    m.files.push_back(std::move(f));
  }
  m.digest = ManifestDigest(m.files);
  if (!o.write_cache) return m;
  Manifest c;
  c.files = std::move(to_cache);
  c.digest = m.digest;
  const std::string text = ManifestToJson(c);
  // Rewrite only when something changed, so read-only starts stay read-only.
  bool changed = m.hashed_files > 0 || cache.size() != c.files.size();
  if (!changed) {
    for (const ManifestFile& f : c.files) {
      auto hit = cache.find(f.path);
      changed |= hit == cache.end() || hit->second.mtime_ns != f.mtime_ns;
    }
  }
  if (!changed) {
    m.cache_path = fs::exists(beside, ec) ? beside : home;
  } else if (WriteAtomically(beside, text)) {
    m.cache_path = beside;
  } else if (!home.empty() && WriteAtomically(home, text)) {
    m.cache_path = home;
  } else {
    m.note += (m.note.empty() ? "" : "; ") +
              fmt::format(
                  "cannot write the manifest cache ('{}' is not writable): kept in "
                  "memory, hashed again next time",
                  beside);
  }
  return m;
}

std::vector<std::string> ManifestDifferences(const Manifest& ref, const Manifest& other) {
  std::map<std::string, const ManifestFile*> theirs;
  for (const ManifestFile& f : other.files) theirs[f.path] = &f;
  std::vector<std::string> out;
  for (const ManifestFile& f : ref.files) {
    auto it = theirs.find(f.path);
    if (it == theirs.end()) {
      out.push_back(f.path + ": missing");
      continue;
    }
    const ManifestFile& g = *it->second;
    if (g.size != f.size) {
      out.push_back(fmt::format("{}: size {} ≠ {}", f.path, g.size, f.size));
    } else if (g.sha256 != f.sha256) {
      out.push_back(fmt::format("{}: sha256 {}… ≠ {}…", f.path, g.sha256.substr(0, 12),
                                f.sha256.substr(0, 12)));
    }
    theirs.erase(it);
  }
  for (const auto& [path, f] : theirs) out.push_back(path + ": not in the reference");
  return out;
}

}  // namespace meshlm::cluster
