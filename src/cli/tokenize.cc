// meshlm tokenize: show the token ids and pieces of a text (or the text of ids).
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "engine/model_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace meshlm::cli {
namespace {

struct TokenizeFlags {
  std::string model;
  std::string text;
  bool ids_only = false;
  bool no_special = false;
  bool decode = false;
};

Result<std::vector<int32_t>> ParseIdList(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t b = item.find_first_not_of(" \t\n");
    if (b == std::string::npos) continue;
    item = item.substr(b, item.find_last_not_of(" \t\n") - b + 1);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (end == item.c_str() || *end != '\0' || v < 0 || v > INT32_MAX) {
      return Error("[tokenize] '{}' is not a token id (expected e.g. 1,2,3)", item);
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

int Run(const TokenizeFlags& f) {
  auto tokenizer = engine::LoadModelTokenizer(f.model);
  if (tokenizer.ok() && !*tokenizer) {
    std::fprintf(stderr,
                 "meshlm tokenize: '%s' has no tokenizer (tokenizer.json or GGUF metadata)\n",
                 f.model.c_str());
    return 1;
  }
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "meshlm tokenize: %s\n", tokenizer.status().message().c_str());
    return 1;
  }
  const Tokenizer& t = **tokenizer;
  if (f.decode) {
    auto ids = ParseIdList(f.text);
    if (!ids.ok()) {
      std::fprintf(stderr, "meshlm tokenize: %s\n", ids.status().message().c_str());
      return 2;
    }
    std::fputs(t.Decode(*ids).c_str(), stdout);
    std::fputc('\n', stdout);
    return 0;
  }
  auto ids = t.Encode(f.text, !f.no_special);
  if (!ids.ok()) {
    std::fprintf(stderr, "meshlm tokenize: %s\n", ids.status().message().c_str());
    return 1;
  }
  if (f.ids_only) {
    std::string line;
    for (size_t i = 0; i < ids->size(); ++i) line += fmt::format("{}{}", i ? "," : "", (*ids)[i]);
    std::puts(line.c_str());
    return 0;
  }
  // One token per line: id, the vocabulary entry, and its text as JSON (so that
  // spaces, newlines and partial characters stay visible).
  for (const int32_t id : *ids) {
    const nlohmann::json token = t.IdToToken(id);
    const nlohmann::json text = t.Decode(std::span<const int32_t>(&id, 1));
    std::printf("%8d  %-24s %s\n", id,
                token.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str(),
                text.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  std::printf("%zu tokens, %zu bytes\n", ids->size(), f.text.size());
  return 0;
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<TokenizeFlags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Show the token ids and pieces of a text");
  flags->model = DefaultModel();  // as for generate, bench and serve
  cmd->add_option("--model", flags->model,
                  "Model folder holding tokenizer.json, or a .gguf file (default: the bundled "
                  "demo model)");
  cmd->add_option("text", flags->text, "Text to tokenize (with --decode: ids such as 1,2,3)")
      ->required();
  cmd->add_flag("--ids", flags->ids_only, "Print only the ids, comma-separated");
  cmd->add_flag("--no-special", flags->no_special,
                "Do not add the model's special tokens (BOS/EOS) around the text");
  cmd->add_flag("--decode", flags->decode, "Turn comma-separated ids back into text");
  cmd->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace meshlm::cli
