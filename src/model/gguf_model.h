// A model from a GGUF file: hyperparameters from metadata into a ModelConfig, tensors
// under their Hugging Face names, and the tokenizer's metadata.
//
// Goals: llama (also Mistral, Llama 2 and Mixtral, which GGUF files label llama), qwen2,
// qwen3 and qwen3moe
// files as llama.cpp's converter writes them; tensors used in place from the map except
// where noted below. Non-goals: other architectures, building the tokenizer itself (the
// tokenizer layer consumes GgufTokenizer).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/safetensors.h"

namespace meshlm::model {

/// tokenizer.ggml.* metadata as stored; ids are -1 when absent.
struct GgufTokenizer {
  std::string model;  // "gpt2" (byte-level BPE) or "llama" (SentencePiece)
  std::string pre;    // pre-tokenizer name, e.g. "llama-bpe", "qwen2"
  std::vector<std::string> tokens;
  std::vector<float> scores;         // empty or one per token
  std::vector<int32_t> token_types;  // empty or one per token
  std::vector<std::string> merges;   // "a b" pairs, gpt2 kind only
  int64_t bos_id = -1, eos_id = -1, eot_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false;
  bool add_eos = false;
  /// SentencePiece kind: a "▁" is put before the text (false for e.g. Gemma).
  bool add_space_prefix = true;
  std::string chat_template;  // tokenizer.chat_template
};

struct GgufModel {
  std::unique_ptr<GgufFile> file;
  ModelConfig config;
  GgufTokenizer tokenizer;
  /// Llama 3 RoPE: per-frequency divisors from the 'rope_freqs.weight' tensor, [Dh/2];
  /// empty when the file has none.
  std::vector<float> rope_freq_factors;
  /// Tensors under Hugging Face names ("model.layers.0.self_attn.q_proj.weight"); 2-D
  /// shapes are [rows, cols] (GGUF stores [cols, rows]). `file` is the GGUF path.
  std::map<std::string, TensorInfo> tensors;
  /// Row-permuted copies of the llama q/k projections that `tensors` points into.
  std::vector<std::vector<uint8_t>> owned;
};

/// Maps and parses `path` and derives the config. Errors name the file and the key or
/// tensor at fault.
Result<GgufModel> LoadGgufModel(const std::string& path);

/// The config of a model path: DIR/config.json, or the metadata of a .gguf file (without
/// loading its tensors).
Result<ModelConfig> LoadModelConfigOfPath(const std::string& path);

/// The Hugging Face name of a GGUF tensor name ("blk.3.ffn_up.weight" →
/// "model.layers.3.mlp.up_proj.weight"); empty when the name is not one we use.
std::string GgufToHfName(const std::string& gguf_name);

/// Reads the tokenizer.ggml.* keys (and tokenizer.chat_template).
Result<GgufTokenizer> ReadGgufTokenizer(const GgufFile& file);

}  // namespace meshlm::model
