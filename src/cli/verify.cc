// meshlm verify: check every host of a hostfile before a job (ssh, version, devices, memory,
// model identical to rank 0's, clock skew); exits non-zero with the fix in words.
#include "cluster/verify.h"

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/host_flags.h"

namespace meshlm::cli {

void AddVerifyCommand(CLI::App& app, int* exit_code) {
  auto* sub = app.add_subcommand(
      "verify", "Check every host: ssh, meshlm version, devices, memory, model, clock");
  auto o = std::make_shared<cluster::VerifyOptions>();
  auto probe = std::make_shared<cluster::ProbeRequest>();
  auto is_probe = std::make_shared<bool>(false);
  auto min_free_gb = std::make_shared<double>(0);
  AddHostFlags(*sub, {.hostfile = &o->hostfile, .ssh_args = &o->ssh_args});
  sub->add_option("--model", o->model,
                  "model folder or .gguf file, at the same path on every host");
  sub->add_option("--remote-meshlm", o->remote_meshlm,
                  "meshlm's path on the hosts (default: this binary's path)");
  sub->add_option("--timeout", o->timeout_s, "seconds per host (default 30)");
  sub->add_option("--max-skew", o->max_skew_s, "largest clock skew in seconds (default 1)");
  sub->add_option("--min-free-gb", *min_free_gb, "fail hosts with less free memory");
  sub->add_flag("--rehash", o->rehash, "hash every model file again, ignoring cached manifests");
  // What each host runs over ssh; prints one JSON object.
  sub->add_flag("--probe", *is_probe)->group("");
  sub->add_option("--iface", probe->interfaces)->group("")->allow_extra_args(false);
  sub->add_option("--rdma", probe->rdma)->group("")->allow_extra_args(false);
  sub->callback([o, probe, is_probe, min_free_gb, exit_code] {
    o->version = MESHLM_VERSION;
    if (*is_probe) {
      probe->model = o->model;
      probe->rehash = o->rehash;
      std::printf("%s\n", cluster::ProbeHost(*probe, o->version).c_str());
      *exit_code = 0;
      return;
    }
    if (o->hostfile.empty()) {
      std::fprintf(stderr, "[verify] --hostfile is required\n");
      *exit_code = 2;
      return;
    }
    if (!(o->timeout_s > 0) || !(o->max_skew_s >= 0) || !(*min_free_gb >= 0)) {
      std::fprintf(stderr, "[verify] --timeout, --max-skew and --min-free-gb must be >= 0\n");
      *exit_code = 2;
      return;
    }
    o->min_free_bytes = *min_free_gb * 1e9;
    if (!o->model.empty()) {  // hosts see the same absolute path
      std::error_code ec;
      o->model = std::filesystem::absolute(o->model, ec).lexically_normal().string();
      if (o->model.size() > 1 && o->model.back() == '/') o->model.pop_back();
    }
    auto rep = cluster::VerifyCluster(*o);
    if (!rep.ok()) {
      std::fprintf(stderr, "%s\n", rep.status().message().c_str());
      *exit_code = 2;
      return;
    }
    std::fputs(rep->Format().c_str(), stdout);
    std::fflush(stdout);
    *exit_code = rep->ok ? 0 : 1;
  });
}

}  // namespace meshlm::cli
