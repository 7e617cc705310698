// The embedded page's files: paths, content types, validators, nothing loaded from elsewhere.
#include "server/ui_assets.h"

#include <gtest/gtest.h>

#include <regex>

namespace meshlm::server {
namespace {

TEST(UiAssets, RootAndUiPathsServeThePage) {
  const UiAsset* root = FindUiAsset("/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->name, "index.html");
  EXPECT_EQ(root->content_type, "text/html; charset=utf-8");
  EXPECT_NE(root->body.find("<!doctype html>"), std::string_view::npos);
  EXPECT_EQ(FindUiAsset("/ui/"), root);
  EXPECT_EQ(FindUiAsset("/ui/index.html"), root);
  const UiAsset* js = FindUiAsset("/ui/app.js");
  ASSERT_NE(js, nullptr);
  EXPECT_EQ(js->content_type, "text/javascript; charset=utf-8");
  ASSERT_NE(FindUiAsset("/ui/app.css"), nullptr);
  EXPECT_EQ(FindUiAsset("/ui/app.css")->content_type, "text/css; charset=utf-8");
  EXPECT_NE(root->etag, js->etag);
  EXPECT_EQ(root->etag.front(), '"');
}

TEST(UiAssets, UnknownPathsAreNotAssets) {
  EXPECT_EQ(FindUiAsset("/ui/nope.js"), nullptr);
  EXPECT_EQ(FindUiAsset("/ui/../CMakeLists.txt"), nullptr);
  EXPECT_EQ(FindUiAsset("/index.html"), nullptr);
  EXPECT_EQ(FindUiAsset("/v1/models"), nullptr);
  EXPECT_EQ(FindUiAsset(""), nullptr);
}

// The page works offline: no file loads anything from another origin.
TEST(UiAssets, NoExternalAssets) {
  const std::regex external(
      R"((src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//)", std::regex::icase);
  for (const char* path :
       {"/", "/ui/app.js", "/ui/api.js", "/ui/cluster.js", "/ui/markdown.js", "/ui/app.css"}) {
    const UiAsset* a = FindUiAsset(path);
    ASSERT_NE(a, nullptr) << path;
    EXPECT_FALSE(std::regex_search(std::string(a->body), external)) << path;
  }
}

}  // namespace
}  // namespace meshlm::server
