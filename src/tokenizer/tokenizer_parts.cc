// Tokenizer::FromParts: assembles the model, the pipeline stages and the added tokens.
#include <algorithm>

#include "base/log.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace meshlm {

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromParts(TokenizerParts parts) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  tok::BpeOptions o;
  o.byte_fallback = parts.byte_fallback;
  o.ignore_merges = parts.ignore_merges;
  o.fuse_unk = parts.fuse_unk;
  o.unk_token = parts.unk_token;
  o.continuing_subword_prefix = parts.continuing_subword_prefix;
  o.end_of_word_suffix = parts.end_of_word_suffix;
  MESHLM_ASSIGN_OR_RETURN(
      t->model_, tok::BpeModel::Create(std::move(parts.vocab), parts.merges, std::move(o)));
  MESHLM_ASSIGN_OR_RETURN(t->normalizer_, tok::MakeNormalizer(parts.normalizer, "normalizer"));
  MESHLM_ASSIGN_OR_RETURN(t->pre_tokenizer_,
                          tok::MakePreTokenizer(parts.pre_tokenizer, "pre_tokenizer"));
  MESHLM_ASSIGN_OR_RETURN(t->post_processor_,
                          tok::MakePostProcessor(parts.post_processor, "post_processor"));
  MESHLM_ASSIGN_OR_RETURN(t->decoder_, tok::MakeDecoder(parts.decoder, "decoder"));

  // Ids of added tokens are assigned as Hugging Face's library re-adds them on load: the
  // model's id when the content is in its vocabulary, else the next free id. The given
  // ids normally agree; when they do not, the library's choice is what a model was
  // trained with, so it wins (with a warning, as there).
  int64_t max_added = -1;
  const int64_t model_size = static_cast<int64_t>(t->model_->vocab_size());
  for (size_t i = 0; i < parts.added_tokens.size(); ++i) {
    TokenizerParts::AddedToken& a = parts.added_tokens[i];
    if (a.content.empty()) return Error("[tokenizer] added_tokens[{}]: empty content", i);
    if (tok::FindInvalidUtf8(a.content) != std::string::npos) {
      return Error("[tokenizer] added_tokens[{}]: content is not valid UTF-8", i);
    }
    if (t->added_by_content_.count(a.content)) continue;
    const int32_t model_id = t->model_->TokenToId(a.content);
    const int32_t id =
        model_id >= 0 ? model_id : static_cast<int32_t>(std::max(model_size, max_added + 1));
    if (a.id >= 0 && id != a.id) {
      MESHLM_LOG_WARN(
          "[tokenizer] added token '{}' has id {} in the file but {} by the loading rules; "
          "using {}",
          a.content, a.id, id, id);
    }
    max_added = std::max<int64_t>(max_added, id);
    tok::AddedToken added;
    added.id = id;
    added.content = std::move(a.content);
    added.special = a.special;
    added.lstrip = a.lstrip;
    added.rstrip = a.rstrip;
    added.single_word = a.single_word;
    added.normalized = a.normalized;
    t->added_by_content_.emplace(added.content, id);
    t->added_.push_back(std::move(added));
  }

  t->vocab_size_ = t->model_->vocab_size();
  for (const tok::AddedToken& a : t->added_) {
    t->vocab_size_ = std::max(t->vocab_size_, static_cast<size_t>(a.id) + 1);
  }
  t->added_index_.assign(t->vocab_size_, -1);
  t->raw_matcher_ = std::make_unique<tok::AddedTokenMatcher>();
  t->normalized_matcher_ = std::make_unique<tok::AddedTokenMatcher>();
  for (size_t i = 0; i < t->added_.size(); ++i) {
    const tok::AddedToken& a = t->added_[i];
    if (t->added_index_[a.id] < 0) t->added_index_[a.id] = static_cast<int32_t>(i);
    if (!a.normalized) {
      t->raw_matcher_->Add(a.content, static_cast<int>(i));
      continue;
    }
    // Normalized tokens are looked for in normalized text, so normalize them too.
    std::string content = a.content;
    if (t->normalizer_) {
      MESHLM_RETURN_IF_ERROR(
          t->normalizer_->Normalize(&content).With(fmt::format("[tokenizer] added_tokens[{}]", i)));
    }
    t->normalized_matcher_->Add(content, static_cast<int>(i));
  }

  t->bos_token_ = std::move(parts.bos_token);
  t->eos_token_ = std::move(parts.eos_token);
  if (!t->bos_token_.empty()) t->bos_id_ = t->TokenToId(t->bos_token_);
  if (!t->eos_token_.empty()) t->eos_id_ = t->TokenToId(t->eos_token_);
  if (t->eos_id_ >= 0) t->stop_ids_.push_back(t->eos_id_);
  for (const int32_t id : parts.extra_stop_ids) {
    if (id >= 0 && std::find(t->stop_ids_.begin(), t->stop_ids_.end(), id) == t->stop_ids_.end()) {
      t->stop_ids_.push_back(id);
    }
  }
  t->chat_template_ = std::move(parts.chat_template);
  t->named_templates_ = std::move(parts.named_chat_templates);
  return t;
}

}  // namespace meshlm
