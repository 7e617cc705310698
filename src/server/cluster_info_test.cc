// The /v1/cluster answer's shape, from a ClusterInfo, a health and the counters.
#include "server/cluster_info.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "server/metrics.h"

namespace meshlm::server {
namespace {

TEST(ClusterJson, RanksHostsLinksAndStats) {
  ClusterInfo info;
  info.model_name = "demo";
  info.num_layers = 4;
  info.num_heads = 8;
  info.num_heads_kv = 2;
  info.context = 256;
  info.hosts = {"a"};
  for (int r = 0; r < 2; ++r) {
    RankInfo ri;
    ri.rank = r;
    ri.host = "a";
    ri.tp_rank = static_cast<size_t>(r);
    ri.tp_size = 2;
    ri.layers = {0, 4};
    ri.heads = {static_cast<size_t>(4 * r), static_cast<size_t>(4 * r + 4)};
    ri.heads_kv = {static_cast<size_t>(r), static_cast<size_t>(r + 1)};
    ri.rss_bytes = 1000;
    ri.mem_available_bytes = 5000;
    ri.mem_total_bytes = 8000;
    info.ranks.push_back(ri);
  }
  info.links.push_back({0, 1, {}, "local", 25.5, 3.25});
  info.gate_latency_us = 42;
  info.gate_comm_ms = 1.5;
  Metrics metrics;
  metrics.running = 1;
  metrics.queue_depth = 3;
  metrics.completion_tokens_total = 17;
  metrics.SetCachedTokens(300);
  metrics.AddCachedPromptTokens(120);
  metrics.SetRankTimes(1, 2.0, 0.5);
  engine::Health health;
  const nlohmann::json j = ClusterJson(info, health, metrics, 9.5);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_FALSE(j.contains("error"));
  EXPECT_EQ(j["model"]["name"], "demo");
  EXPECT_EQ(j["model"]["context"], 256);
  ASSERT_EQ(j["ranks"].size(), 2u);
  EXPECT_EQ(j["ranks"][1]["heads"], nlohmann::json::array({4, 8}));
  EXPECT_EQ(j["ranks"][1]["tp_rank"], 1);
  EXPECT_FALSE(j["ranks"][0].contains("experts"));  // a dense model
  EXPECT_EQ(j["ranks"][1]["compute_s"], 2.0);
  EXPECT_EQ(j["ranks"][0]["compute_s"], 0.0);  // no report from rank 0 yet
  ASSERT_EQ(j["hosts"].size(), 1u);
  EXPECT_EQ(j["hosts"][0]["ranks"], nlohmann::json::array({0, 1}));
  EXPECT_EQ(j["hosts"][0]["mem_total_bytes"], 8000);
  ASSERT_EQ(j["links"].size(), 1u);
  EXPECT_EQ(j["links"][0]["kind"], "local");
  EXPECT_EQ(j["links"][0]["latency_us"], 25.5);
  EXPECT_EQ(j["links"][0]["gbps"], 3.25);
  EXPECT_EQ(j["gate"]["all_sum_latency_us"], 42.0);
  EXPECT_EQ(j["stats"]["running"], 1);
  EXPECT_EQ(j["stats"]["queued"], 3);
  EXPECT_EQ(j["stats"]["completion_tokens_total"], 17);
  EXPECT_EQ(j["stats"]["uptime_s"], 9.5);
  EXPECT_EQ(j["stats"]["prefix_cache_tokens"], 300);
  EXPECT_EQ(j["stats"]["prompt_tokens_cached_total"], 120);
}

TEST(ClusterJson, DegradedAndNoGate) {
  ClusterInfo info;
  Metrics metrics;
  engine::Health health;
  health.state = engine::Health::State::kDegraded;
  health.reason = "rank 1 has not answered for 3.2 s";
  health.waiting_s = 3.2;
  const nlohmann::json j = ClusterJson(info, health, metrics, 1);
  EXPECT_EQ(j["status"], "degraded");
  EXPECT_EQ(j["error"], health.reason);
  EXPECT_EQ(j["waiting_on_ranks_s"], 3.2);
  EXPECT_FALSE(j.contains("gate"));
  EXPECT_TRUE(j["ranks"].empty());
  health.state = engine::Health::State::kBroken;
  EXPECT_EQ(ClusterJson(info, health, metrics, 1)["status"], "error");
}

TEST(ClusterInfo, HostfileLinksBetweenHosts) {
  ClusterInfo info;
  for (const char* h : {"a", "b", "c", "c"}) {
    RankInfo r;
    r.rank = static_cast<int>(info.ranks.size());
    r.host = h;
    info.ranks.push_back(r);
  }
  info.links.push_back({2, 3, {}, "local"});
  std::vector<HostLinks> hosts(4);
  hosts[0].rdma = {{}, {"rdma_en1", "rdma_en2"}, {}, {}};
  hosts[0].links = {{}, {"10.0.0.2"}, {"10.0.1.3"}, {}};
  for (int i = 0; i < 4; ++i) hosts[static_cast<size_t>(i)].address = fmt::format("h{}", i);
  AddHostfileLinks(hosts, &info);
  // 0-1 rdma (2 rails), 0-2 the hostfile's link, 0-3 and 1-2, 1-3 over the peer's address;
  // 2-3 share a host and keep their local link alone.
  ASSERT_EQ(info.links.size(), 6u);
  EXPECT_EQ(info.links[1].kind, "rdma");
  EXPECT_EQ(info.links[1].rails, (std::vector<std::string>{"rdma_en1", "rdma_en2"}));
  EXPECT_EQ(info.links[2].kind, "tcp");
  EXPECT_EQ(info.links[2].rails, std::vector<std::string>{"10.0.1.3"});
  EXPECT_EQ(info.links[3].rails, std::vector<std::string>{"h3"});
  EXPECT_EQ(info.links[4].a, 1u);
  EXPECT_EQ(info.links[4].rails, std::vector<std::string>{"h2"});
  for (const LinkInfo& l : info.links) EXPECT_FALSE(l.a == 2 && l.b == 3 && l.kind != "local");
}

}  // namespace
}  // namespace meshlm::server
