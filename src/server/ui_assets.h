// The web page (chat and cluster view) built into the binary: its files, their content
// types and validators, for the HTTP server to answer GET / and GET /ui/<file>.
//
// Goals: the binary stays one file that serves the page offline, with no external
// assets; an unchanged file is revalidated cheaply (ETag). Non-goals: compression,
// directories under ui/.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace meshlm::server {

struct UiAsset {
  std::string_view name;  // "index.html", "app.js"
  std::string_view body;
  std::string_view content_type;  // from the file's extension
  std::string etag;               // quoted, from a hash of the body
};

/// The asset for a request path: "/" and "/ui/" are index.html, "/ui/<name>" the file of
/// that name; null otherwise. Thread-safe; the assets live for the whole program.
const UiAsset* FindUiAsset(std::string_view path);

namespace ui_data {
// Filled by the generated source (embed_ui.cmake).
struct EmbeddedFile {
  const char* name;
  const unsigned char* data;
  size_t size;
};
extern const EmbeddedFile kFiles[];
extern const size_t kNumFiles;
}  // namespace ui_data

}  // namespace meshlm::server
