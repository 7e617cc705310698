// meshlm plan: the shard plan and memory per rank for a model on a cluster, without
// loading any weight.
#include "parallel/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "base/meminfo.h"
#include "cli/commands.h"
#include "cluster/hostfile.h"
#include "model/config.h"
#include "model/gguf_model.h"

namespace meshlm::cli {
namespace {

struct PlanFlags {
  std::string model;
  std::string hostfile;
  size_t n = 0;
  size_t tp = 0;
  size_t pp = 0;
  size_t ep = 0;
  size_t ctx = 0;
  double bits = 0;    // per stored weight; 0: from --quant or the model's files
  std::string quant;  // q8_0, q4_0, mlx4, ...
  std::string layers;
  std::string memory_gib;  // per rank, "16,16,8"
};

// Bits per stored weight for the sizes: --bits, or a quantized copy's (--quant), or what
// the model's weight files hold per parameter, or bf16's 16 for a folder without weights.
// Sets *note to say which.
Result<double> BitsPerWeight(const PlanFlags& f, const model::ModelConfig& config,
                             std::string* note) {
  static const std::map<std::string, double> kQuant = {
      {"q8_0", 8.5}, {"q4_0", 4.5}, {"q4_k", 4.5}, {"q6_k", 6.5625},
      {"mlx4", 4.5}, {"mlx8", 8.5}, {"bf16", 16},  {"f16", 16},
  };
  if (!f.quant.empty() && f.bits > 0) return Error("[plan] give --quant or --bits, not both");
  if (!f.quant.empty()) {
    const auto it = kQuant.find(f.quant);
    if (it == kQuant.end()) {
      std::string names;
      for (const auto& [k, v] : kQuant) names += (names.empty() ? "" : ", ") + k;
      return Error("[plan] --quant '{}': expected one of {}", f.quant, names);
    }
    *note = fmt::format("weights as a {} copy: {} bits per weight", f.quant, it->second);
    return it->second;
  }
  if (f.bits != 0) {
    if (!(f.bits > 0 && f.bits <= 32)) return Error("[plan] --bits {} must lie in (0, 32]", f.bits);
    *note = fmt::format("weights at {} bits per weight as given by --bits", f.bits);
    return f.bits;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  size_t bytes = 0;
  if (fs::is_directory(f.model, ec)) {
    for (const auto& e : fs::directory_iterator(f.model, ec)) {
      if (e.path().extension() == ".safetensors") bytes += e.file_size(ec);
    }
  } else if (fs::is_regular_file(f.model, ec)) {
    bytes = fs::file_size(f.model, ec);
  }
  const double elements = parallel::WeightElements(config);
  if (bytes == 0 || elements <= 0) {
    *note =
        "weights at 16 bits (bf16): the folder holds no weight files; give --quant for "
        "a quantized copy";
    return 16.0;
  }
  const double bits = std::clamp(bytes * 8.0 / elements, 1.0, 32.0);
  *note = fmt::format(
      "weights at {:.2f} bits per weight, as the model's files hold them "
      "({:.2f} GiB); --quant q8_0|q4_0|mlx4 sizes a quantized copy",
      bits, bytes / 1073741824.0);
  return bits;
}

Status RunPlan(const PlanFlags& f) {
  MESHLM_ASSIGN_OR_RETURN(model::ModelConfig config, model::LoadModelConfigOfPath(f.model));
  parallel::PlanRequest req;
  std::string memory_note;
  cluster::Hostfile hosts;
  if (!f.hostfile.empty()) {
    MESHLM_ASSIGN_OR_RETURN(hosts, cluster::LoadHostfile(f.hostfile));
    req.world_size = hosts.hosts.size();
  } else {
    req.world_size = f.n;
  }
  if (req.world_size == 0) return Error("[plan] give --hostfile or -n");
  req.tp = f.tp;
  req.pp = f.pp;
  req.ep = f.ep;
  req.context = f.ctx;
  if (!f.layers.empty()) {
    MESHLM_ASSIGN_OR_RETURN(req.layers, parallel::ParseSizeList(f.layers, "--layers"));
  }
  if (!f.memory_gib.empty()) {
    MESHLM_ASSIGN_OR_RETURN(auto gib, parallel::ParseSizeList(f.memory_gib, "--memory"));
    for (size_t g : gib) req.memory.push_back(g << 30);
    memory_note = "memory per rank as given by --memory";
  } else if (f.hostfile.empty()) {
    // Local ranks share this host's available memory.
    const size_t avail = MemAvailableBytes();
    if (avail > 0) req.memory.assign(req.world_size, avail / req.world_size);
    memory_note = fmt::format("memory per rank: this host's available {:.1f} GiB / {} ranks",
                              avail / 1073741824.0, req.world_size);
  } else {
    // The hostfile's "memory_gb" of every host, when each has one.
    const bool all =
        std::all_of(hosts.hosts.begin(), hosts.hosts.end(),
                    [](const cluster::HostEntry& h) { return h.memory_gb.has_value(); });
    if (all) {
      for (const cluster::HostEntry& h : hosts.hosts) {
        req.memory.push_back(static_cast<size_t>(*h.memory_gb * 1073741824.0));
      }
      memory_note = "memory per rank: the hostfile's memory_gb of each host";
    } else {
      memory_note =
          "memory not checked (give --memory GiB per rank, or memory_gb per host in "
          "the hostfile)";
    }
  }
  std::string bits_note;
  MESHLM_ASSIGN_OR_RETURN(const double bits, BitsPerWeight(f, config, &bits_note));
  req.weight_bytes_per_element = bits / 8;
  // Ranks on one host (the same ssh name) form one run; hosts are joined by TCP, the
  // only transport the collectives use, so the default layout is a stage per host.
  for (size_t i = 0; i < hosts.hosts.size(); ++i) {
    const auto& h = hosts.hosts[i];
    const std::string name = h.ssh.empty() && !h.ips.empty() ? h.ips[0] : h.ssh;
    size_t id = i;
    for (size_t j = 0; j < i; ++j) {
      const auto& g = hosts.hosts[j];
      if ((g.ssh.empty() && !g.ips.empty() ? g.ips[0] : g.ssh) == name) id = req.host_of[j];
    }
    req.host_of.push_back(id);
  }
  MESHLM_ASSIGN_OR_RETURN(parallel::Plan plan, parallel::MakePlan(config, req));
  fmt::print("{}", parallel::FormatPlan(config, plan, req.memory));
  fmt::print("{}\n{}\n", memory_note, bits_note);
  return OkStatus();
}

}  // namespace

void AddPlanCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<PlanFlags>();
  CLI::App* cmd =
      app.add_subcommand("plan", "Show how a model splits over ranks, without loading it");
  cmd->add_option("--model", f->model, "Model folder")->required();
  cmd->add_option("--hostfile", f->hostfile, "MLX JSON hostfile: one rank per host");
  cmd->add_option("-n", f->n, "Local ranks (without --hostfile)");
  cmd->add_option("--tp", f->tp,
                  "Tensor-parallel ranks per stage (default: chosen from the ranks)");
  cmd->add_option("--pp", f->pp, "Pipeline stages (default: chosen from the ranks)");
  cmd->add_option("--ep", f->ep, "Expert-parallel groups per stage, MoE models (default: 1)");
  cmd->add_option("--quant", f->quant,
                  "Size a quantized copy: q8_0, q4_0, q4_k, q6_k, mlx4, mlx8, bf16 or f16 "
                  "(default: as the model's files hold it)");
  cmd->add_option("--bits", f->bits,
                  "Bits per stored weight, for the memory estimate (default: as the model's "
                  "files hold it; 16 for a folder without weights)");
  cmd->add_option("--ctx", f->ctx, "Context to budget the KV cache for (default: the model's)");
  cmd->add_option("--layers", f->layers, "Layers per stage, e.g. 10,18");
  cmd->add_option("--memory", f->memory_gib, "GiB available per rank, e.g. 64,64,32");
  cmd->callback([f, exit_code] {
    const Status s = RunPlan(*f);
    if (!s.ok()) {
      fmt::print(stderr, "meshlm plan: {}\n", s.message());
      *exit_code = 1;
    }
  });
}

}  // namespace meshlm::cli
