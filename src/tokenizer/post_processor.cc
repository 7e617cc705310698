// Post-processors of tokenizer.json: TemplateProcessing, ByteLevel (no change to ids),
// Bert/Roberta (cls A sep) and Sequence. Only single sequences are processed.
#include "tokenizer/pipeline.h"

namespace meshlm::tok {

using nlohmann::json;

namespace {

class TemplateProcessor final : public PostProcessor {
 public:
  // `prefix` and `suffix` are the special ids before and after sequence A.
  TemplateProcessor(std::vector<int32_t> prefix, std::vector<int32_t> suffix)
      : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}
  void Process(std::vector<int32_t>* ids) const override {
    ids->insert(ids->begin(), prefix_.begin(), prefix_.end());
    ids->insert(ids->end(), suffix_.begin(), suffix_.end());
  }

 private:
  std::vector<int32_t> prefix_, suffix_;
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts)
      : parts_(std::move(parts)) {}
  void Process(std::vector<int32_t>* ids) const override {
    for (const auto& p : parts_) p->Process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

Result<std::unique_ptr<PostProcessor>> MakeTemplate(const json& j, const std::string& field) {
  const auto single = j.find("single");
  if (single == j.end() || !single->is_array()) {
    return Error("[tokenizer] {}.single: expected an array", field);
  }
  const json specials = j.value("special_tokens", json::object());
  std::vector<int32_t> prefix, suffix;
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& item = (*single)[i];
    const std::string where = fmt::format("{}.single[{}]", field, i);
    if (item.contains("Sequence")) {
      if (seen_sequence) return Error("[tokenizer] {}: a second sequence in 'single'", where);
      seen_sequence = true;
      continue;
    }
    const auto st = item.find("SpecialToken");
    if (st == item.end()) {
      return Error("[tokenizer] {}: expected SpecialToken or Sequence", where);
    }
    MESHLM_ASSIGN_OR_RETURN(const std::string name, GetString(*st, "id", where + ".SpecialToken"));
    const auto def = specials.find(name);
    if (def == specials.end() || !def->contains("ids") || !(*def)["ids"].is_array()) {
      return Error("[tokenizer] {}: special token '{}' has no ids in special_tokens", where, name);
    }
    for (const json& id : (*def)["ids"]) {
      if (!id.is_number_integer())
        return Error("[tokenizer] {}: ids of '{}' must be integers", where, name);
      (seen_sequence ? suffix : prefix).push_back(id.get<int32_t>());
    }
  }
  return std::unique_ptr<PostProcessor>(
      std::make_unique<TemplateProcessor>(std::move(prefix), std::move(suffix)));
}

}  // namespace

Result<std::unique_ptr<PostProcessor>> MakePostProcessor(const json& j, const std::string& field) {
  if (j.is_null()) return std::unique_ptr<PostProcessor>();
  if (!j.is_object()) return Error("[tokenizer] {}: expected an object or null", field);
  MESHLM_ASSIGN_OR_RETURN(const std::string type, GetString(j, "type", field));
  if (type == "TemplateProcessing") return MakeTemplate(j, field);
  if (type == "ByteLevel") return std::unique_ptr<PostProcessor>();
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    const json cls = j.value("cls", json()), sep = j.value("sep", json());
    if (!cls.is_array() || cls.size() != 2 || !cls[1].is_number_integer() || !sep.is_array() ||
        sep.size() != 2 || !sep[1].is_number_integer()) {
      return Error("[tokenizer] {}: cls and sep must be [token, id]", field);
    }
    return std::unique_ptr<PostProcessor>(std::make_unique<TemplateProcessor>(
        std::vector<int32_t>{cls[1].get<int32_t>()}, std::vector<int32_t>{sep[1].get<int32_t>()}));
  }
  if (type == "Sequence") {
    const auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) {
      return Error("[tokenizer] {}.processors: expected an array", field);
    }
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (size_t i = 0; i < it->size(); ++i) {
      MESHLM_ASSIGN_OR_RETURN(
          auto part, MakePostProcessor((*it)[i], fmt::format("{}.processors[{}]", field, i)));
      if (part) parts.push_back(std::move(part));
    }
    return std::unique_ptr<PostProcessor>(std::make_unique<SequenceProcessor>(std::move(parts)));
  }
  return Error("[tokenizer] {}: post_processor type '{}' is not supported", field, type);
}

}  // namespace meshlm::tok
