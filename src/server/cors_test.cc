// CorsPolicy: --allow-origin values, exact origin matching and the headers of each answer.
#include "server/cors.h"

#include <gtest/gtest.h>

namespace meshlm::server {
namespace {

const std::string* Find(const CorsPolicy::Headers& h, const std::string& name) {
  for (const auto& [k, v] : h) {
    if (k == name) return &v;
  }
  return nullptr;
}

TEST(Cors, OriginsAreCheckedAndNormalized) {
  auto p = CorsPolicy::Parse({"http://LocalHost:3000, https://a.example.com:443", "*",
                              "http://[::1]:8080", "http://localhost:3000"});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->values(), (std::vector<std::string>{"*", "http://localhost:3000",
                                                   "https://a.example.com", "http://[::1]:8080"}));
  for (const char* bad :
       {"localhost:3000", "http://", "http://a.com/", "http://a.com/path", "http://a.com:0",
        "http://a.com:65536", "http://a.com:x", "http://user@a.com", "1http://a.com",
        "http://a b.com", "http://[::1", "null", "", "http://a.com,"}) {
    auto r = CorsPolicy::Parse({bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(fmt::format("'{}'", bad)), std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find("scheme://host[:port]"), std::string::npos)
        << r.status().message();
  }
}

TEST(Cors, OffByDefault) {
  CorsPolicy off;
  const std::string origin = "http://a.com";
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.ForResponse(&origin).empty());
  EXPECT_TRUE(off.ForPreflight(&origin, "POST, OPTIONS", nullptr).empty());
}

TEST(Cors, AListedOriginIsEchoedAndNoOtherIs) {
  auto p = CorsPolicy::Parse({"http://a.com:3000"});
  ASSERT_TRUE(p.ok());
  const std::string listed = "http://a.com:3000", other = "http://a.com:3001",
                    longer = "http://a.com:3000.evil.com";
  CorsPolicy::Headers h = p->ForResponse(&listed);
  ASSERT_NE(Find(h, "Access-Control-Allow-Origin"), nullptr);
  EXPECT_EQ(*Find(h, "Access-Control-Allow-Origin"), listed);
  EXPECT_EQ(*Find(h, "Vary"), "Origin");
  for (const std::string* o : {&other, &longer, static_cast<const std::string*>(nullptr)}) {
    h = p->ForResponse(o);
    EXPECT_EQ(Find(h, "Access-Control-Allow-Origin"), nullptr);
    // The answer depends on Origin all the same: caches must know.
    ASSERT_NE(Find(h, "Vary"), nullptr);
    EXPECT_TRUE(p->ForPreflight(o, "POST, OPTIONS", nullptr).empty());
  }
}

TEST(Cors, AnyOriginAndPreflights) {
  auto p = CorsPolicy::Parse({"*"});
  ASSERT_TRUE(p.ok());
  const std::string origin = "https://x.org";
  CorsPolicy::Headers h = p->ForResponse(&origin);
  EXPECT_EQ(*Find(h, "Access-Control-Allow-Origin"), "*");
  EXPECT_EQ(Find(h, "Vary"), nullptr);
  const std::string asked = "authorization, content-type, x-stainless-os";
  h = p->ForPreflight(&origin, "POST, OPTIONS", &asked);
  EXPECT_EQ(*Find(h, "Access-Control-Allow-Methods"), "POST, OPTIONS");
  EXPECT_EQ(*Find(h, "Access-Control-Allow-Headers"), asked);
  ASSERT_NE(Find(h, "Access-Control-Max-Age"), nullptr);
  // Nothing that could break the header block is echoed.
  const std::string odd = "a\x01b";
  h = p->ForPreflight(&origin, "GET, OPTIONS", &odd);
  EXPECT_EQ(*Find(h, "Access-Control-Allow-Headers"), "Authorization, Content-Type");
}

}  // namespace
}  // namespace meshlm::server
