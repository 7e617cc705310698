// Model manifests: the size and SHA-256 of every file of a model, cached beside the model
// so that checking a multi-gigabyte model on every start costs a few stat calls.
//
// Goals: `verify`, `sync` and the pre-start gate agree on what "the same model" means (the
// digest of the sorted (path, size, sha256) list); a file is re-hashed only when its size
// or mtime changed since it was last hashed. Non-goals: detecting a change that keeps both
// size and mtime (a deliberate `touch -d` after editing); `meshlm verify --rehash` is the
// answer to that.
//
// Cache: DIR/.meshlm-manifest.json for a model folder, FILE.meshlm-manifest.json beside a
// single file (a .gguf). When that place is not writable, ~/.cache/meshlm/manifests/ holds
// it; when neither is, the manifest lives in memory only (`note` says so).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace meshlm {
class Progress;
}

namespace meshlm::cluster {

struct ManifestFile {
  std::string path;  // relative to the model folder ('/'-separated); the file name for a file
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string sha256;  // lowercase hex
};

struct Manifest {
  std::vector<ManifestFile> files;  // sorted by path
  /// SHA-256 (hex) of the (path, size, sha256) list: equal digests mean identical models.
  std::string digest;
  uint64_t total_bytes = 0;
  /// Files and bytes hashed to build this manifest (the rest came from the cache).
  int hashed_files = 0;
  uint64_t hashed_bytes = 0;
  /// Where the cache was read from or written to; empty when kept in memory only.
  std::string cache_path;
  /// Anything the user may want to know (an unreadable cache that was rebuilt, no cache).
  std::string note;
};

struct ManifestOptions {
  /// Hash every file, ignoring the cache.
  bool rehash = false;
  /// Write the (updated) cache back.
  bool write_cache = true;
  /// Show progress on stderr while hashing.
  bool show_progress = false;
};

/// The files that make up the model at `model_path` (a folder, walked recursively, or one
/// file), excluding hidden entries (.git, .cache, manifests) and partial transfers
/// (*.meshlm-part). Thread-compatible;
/// several processes may build the same manifest at once (the cache is replaced atomically).
Result<Manifest> BuildManifest(const std::string& model_path, const ManifestOptions& options = {});

/// The lowercase hex SHA-256 of a file's contents, read in 8 MiB chunks.
Result<std::string> Sha256File(const std::string& path, Progress* progress = nullptr);
/// The lowercase hex SHA-256 of `bytes`.
std::string Sha256Hex(const std::string& bytes);

/// Digest of the (path, size, sha256) list, as stored in Manifest::digest.
std::string ManifestDigest(const std::vector<ManifestFile>& files);

/// The manifest as JSON (for verify's probe) and back; errors name the field.
std::string ManifestToJson(const Manifest& m);
Result<Manifest> ManifestFromJson(const std::string& json, const std::string& source);

/// Where the cache of `model_path` is kept beside the model.
std::string ManifestCachePath(const std::string& model_path);

/// One line per difference of `other` from `reference`: "model.safetensors: sha256
/// 3fa1c2d9… ≠ 9b0e77aa…", "config.json: missing", "extra.bin: not in the reference".
std::vector<std::string> ManifestDifferences(const Manifest& reference, const Manifest& other);

}  // namespace meshlm::cluster
