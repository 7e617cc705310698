// The embedded web page's lookup: path to file, content type and ETag.
#include "server/ui_assets.h"

#include <fmt/format.h>

#include <vector>

namespace meshlm::server {
namespace {

std::string_view ContentTypeOf(std::string_view name) {
  auto ends = [&](std::string_view ext) { return name.ends_with(ext); };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".json")) return "application/json";
  if (ends(".png")) return "image/png";
  if (ends(".ico")) return "image/x-icon";
  return "application/octet-stream";
}

// FNV-1a, 64 bits: enough to tell one build's file from another's.
uint64_t Hash(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

const std::vector<UiAsset>& Assets() {
  static const std::vector<UiAsset> assets = [] {
    std::vector<UiAsset> v;
    for (size_t i = 0; i < ui_data::kNumFiles; ++i) {
      const ui_data::EmbeddedFile& f = ui_data::kFiles[i];
      UiAsset a;
      a.name = f.name;
      a.body = std::string_view(reinterpret_cast<const char*>(f.data), f.size);
      a.content_type = ContentTypeOf(a.name);
      a.etag = fmt::format("\"{:016x}\"", Hash(a.body));
      v.push_back(std::move(a));
    }
    return v;
  }();
  return assets;
}

}  // namespace

const UiAsset* FindUiAsset(std::string_view path) {
  std::string_view name;
  if (path == "/" || path == "/ui" || path == "/ui/") {
    name = "index.html";
  } else if (path.starts_with("/ui/")) {
    name = path.substr(4);
  } else {
    return nullptr;
  }
  for (const UiAsset& a : Assets()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace meshlm::server
