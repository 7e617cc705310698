# Trains the bundled demo model (byte-level BPE tokenizer + small Llama) on Debian's fortunes text and writes a Hugging Face folder.
"""Train meshlm's bundled demo model.

Pipeline (every step deterministic given --seed):
  1. read the English fortune files shipped by Debian's `fortunes` and
     `fortunes-min` packages (BSD licence), clean them, split train/validation;
  2. build a training stream of plain fortunes and ChatML-formatted
     conversations ("Tell me a fortune about X" -> fortune);
  3. train a GPT-2 style byte-level BPE tokenizer on that text;
  4. train a small LlamaForCausalLM in plain torch (RMSNorm, rotate-half RoPE,
     GQA attention, SiLU-gated MLP, tied embeddings) under a wall-clock budget,
     checkpointing so that a rerun resumes;
  5. write config.json, model.safetensors (bf16), tokenizer.json,
     tokenizer_config.json, generation_config.json and README.md;
  6. reload the folder, check the tokenizer round-trips text and sample text.

Run through tools/train_demo_model.sh, which installs the Debian packages.
"""

import argparse
import hashlib
import heapq
import json
import math
import os
import random
import struct
import sys
import time

import regex
import torch
import torch.nn as nn
import torch.nn.functional as F

FORTUNE_DIR = "/usr/share/games/fortunes"
# ascii-art is pictures, ethnic is jokes about nationalities: neither belongs in a demo.
EXCLUDED_FILES = {"ascii-art", "ethnic"}

EOT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIALS = [EOT, IM_START, IM_END]

# GPT-2's pre-tokenizer pattern; the ByteLevel pre-tokenizer with use_regex=true applies the same one.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PRETOKENIZE = regex.compile(GPT2_PATTERN)

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Topic words for the fortune files, used in chat prompts ("... about <topic>").
TOPICS = {
    "computers": "computers", "debian": "Debian", "definitions": "words", "drugs": "drugs",
    "education": "education", "food": "food", "goedel": "logic", "humorists": "humor",
    "kids": "kids", "law": "the law", "linux": "Linux", "linuxcookie": "Linux",
    "literature": "literature", "love": "love", "magic": "magic", "medicine": "medicine",
    "men-women": "men and women", "news": "the news", "paradoxum": "paradoxes",
    "people": "people", "perl": "Perl", "pets": "pets", "politics": "politics",
    "pratchett": "Terry Pratchett", "riddles": "riddles", "science": "science",
    "songs-poems": "poetry", "sports": "sports", "startrek": "Star Trek", "tao": "the Tao",
    "wisdom": "wisdom", "work": "work", "art": "television",
}
GENERIC_PROMPTS = [
    "Tell me a fortune.", "Give me a fortune.", "Say something wise.", "Tell me something interesting.",
    "Hello!", "Hi.", "What is my fortune today?", "Share a quote.", "Tell me a joke.",
    "Can you tell me something funny?", "Say something.", "What do you think?",
]
TOPIC_PROMPTS = [
    "Say something wise about {}.", "Tell me a fortune about {}.", "Give me a quote about {}.",
    "What do you know about {}?", "Tell me something about {}.", "Tell me a joke about {}.",
]
SYSTEM_PROMPTS = ["You are a helpful assistant.", "You are a fortune teller. Answer with a fortune."]


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


# ----------------------------------------------------------------------------- corpus

def clean_fortune(text):
    """Returns the cleaned fortune, or None when it is not plain English prose."""
    text = regex.sub(r".\x08", "", text)  # overstrike (underlining with backspaces)
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    text = "\n".join(lines)
    if len(text) < 12 or len(text) > 1500:
        return None
    if regex.search(r"[^\n\t\x20-\x7e\u00a0-\u024f\u2010-\u201f\u2026]", text):
        return None  # control characters, non-Latin scripts, odd symbols
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if letters < 0.65 * len(visible):
        return None  # drawings, tables, code
    return text


def read_fortunes(directory):
    """Returns [(file_name, fortune_text)] in a fixed order."""
    out = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.endswith((".dat", ".u8")) or name in EXCLUDED_FILES or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            raw = f.read().decode("utf-8", errors="replace")
        for piece in regex.split(r"\n%\n", "\n" + raw + "\n"):
            text = clean_fortune(piece)
            if text is not None:
                out.append((name, text))
    return out


def chat_text(rng, topic_file, fortune):
    if topic_file in TOPICS and rng.random() < 0.6:
        prompt = rng.choice(TOPIC_PROMPTS).format(TOPICS[topic_file])
    else:
        prompt = rng.choice(GENERIC_PROMPTS)
    msgs = []
    if rng.random() < 0.2:
        msgs.append(("system", rng.choice(SYSTEM_PROMPTS)))
    msgs += [("user", prompt), ("assistant", fortune)]
    return "".join(f"{IM_START}{role}\n{content}{IM_END}\n" for role, content in msgs)


def build_documents(fortunes, seed, chat_fraction):
    """Splits fortunes into train/validation and returns (train_docs, val_docs), each doc a string
    ending in <|endoftext|>. Train docs are every fortune as plain text plus a chat copy of a fraction."""
    rng = random.Random(seed)
    order = list(range(len(fortunes)))
    rng.shuffle(order)
    n_val = max(1, len(order) // 50)
    val = [fortunes[i][1] + EOT for i in order[:n_val]]
    train = []
    for i in order[n_val:]:
        name, text = fortunes[i]
        train.append(text + EOT)
        if rng.random() < chat_fraction:
            train.append(chat_text(rng, name, text) + EOT)
    rng.shuffle(train)
    return train, val


# ----------------------------------------------------------------------------- tokenizer

def byte_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = byte_to_unicode()
CHAR_BYTES = {c: b for b, c in BYTE_CHARS.items()}
SPECIAL_SPLIT = regex.compile("(" + "|".join(regex.escape(s) for s in SPECIALS) + ")")


def split_specials(text):
    """Yields (is_special, piece) like Hugging Face's added-token splitting."""
    for piece in SPECIAL_SPLIT.split(text):
        if piece:
            yield piece in SPECIALS, piece


def pretokens(text):
    """Byte-level pre-tokens of plain text, as strings of mapped characters."""
    for word in PRETOKENIZE.findall(text):
        yield "".join(BYTE_CHARS[b] for b in word.encode("utf-8"))


def train_bpe(texts, vocab_size):
    """Learns BPE merges over byte-level pre-tokens. Returns (vocab list of token strings, merges list)."""
    counts = {}
    for text in texts:
        for special, piece in split_specials(text):
            if not special:
                for w in pretokens(piece):
                    counts[w] = counts.get(w, 0) + 1
    tokens = [BYTE_CHARS[b] for b in range(256)]
    token_id = {t: i for i, t in enumerate(tokens)}
    words = [[token_id[c] for c in w] for w in sorted(counts)]
    freq = [counts[w] for w in sorted(counts)]
    pair_count, where = {}, {}
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_count[p] = pair_count.get(p, 0) + freq[i]
            where.setdefault(p, set()).add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    target = vocab_size - len(SPECIALS)
    while len(tokens) < target and heap:
        negc, pair = heapq.heappop(heap)
        if pair_count.get(pair) != -negc:
            continue  # stale entry
        if -negc < 2:
            break
        a, b = pair
        merged = tokens[a] + tokens[b]
        if merged not in token_id:
            token_id[merged] = len(tokens)
            tokens.append(merged)
        new = token_id[merged]
        merges.append((tokens[a], tokens[b]))
        changed = set()
        for i in sorted(where.pop(pair, ())):
            w = words[i]
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(new)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            if len(out) == len(w):
                continue
            c = freq[i]
            for p in zip(w, w[1:]):
                pair_count[p] -= c
                changed.add(p)
            for p in zip(out, out[1:]):
                pair_count[p] = pair_count.get(p, 0) + c
                changed.add(p)
                where.setdefault(p, set()).add(i)
            words[i] = out
        for p in changed:
            c = pair_count[p]
            if c <= 0:
                del pair_count[p]
                where.pop(p, None)
            elif p != pair:
                heapq.heappush(heap, (-c, p))
        pair_count.pop(pair, None)
    return tokens, merges


class Tokenizer:
    """Byte-level BPE with added special tokens, matching the tokenizer.json this script writes."""

    def __init__(self, tokens, merges):
        self.tokens = list(tokens) + SPECIALS
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {pair: r for r, pair in enumerate(merges)}
        self.merges = merges
        self.cache = {}

    def special_id(self, s):
        return self.ids[s]

    def _bpe(self, word):
        hit = self.cache.get(word)
        if hit is not None:
            return hit
        parts = list(word)
        while len(parts) > 1:
            best, best_rank = None, None
            for k in range(len(parts) - 1):
                r = self.ranks.get((parts[k], parts[k + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = k, r
            if best is None:
                break
            a, b = parts[best], parts[best + 1]
            out, j = [], 0
            while j < len(parts):
                if j + 1 < len(parts) and parts[j] == a and parts[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(parts[j])
                    j += 1
            parts = out
        ids = [self.ids[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        out = []
        for special, piece in split_specials(text):
            if special:
                out.append(self.ids[piece])
            else:
                for w in pretokens(piece):
                    out.extend(self._bpe(w))
        return out

    def decode(self, ids):
        data, text = bytearray(), []
        for i in ids:
            t = self.tokens[i]
            if t in SPECIALS:
                text.append(data.decode("utf-8", errors="replace"))
                data = bytearray()
                text.append(t)
            else:
                data.extend(CHAR_BYTES[c] for c in t)
        text.append(data.decode("utf-8", errors="replace"))
        return "".join(text)

    def to_json(self):
        n = len(self.tokens) - len(SPECIALS)
        added = [{"id": n + k, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for k, s in enumerate(SPECIALS)]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                "vocab": {t: i for i, t in enumerate(self.tokens)},
                "merges": [f"{a} {b}" for a, b in self.merges],
            },
        }

    @staticmethod
    def from_json(obj):
        vocab = obj["model"]["vocab"]
        tokens = [None] * len(vocab)
        for t, i in vocab.items():
            tokens[i] = t
        merges = [tuple(m.split(" ")) for m in obj["model"]["merges"]]
        assert tokens[-len(SPECIALS):] == SPECIALS
        return Tokenizer(tokens[:-len(SPECIALS)], merges)


def tokenizer_config(tok, context):
    n = len(tok.tokens) - len(SPECIALS)
    return {
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(n + k): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                         "single_word": False, "special": True} for k, s in enumerate(SPECIALS)},
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": EOT,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": context,
        "pad_token": EOT,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }


# ----------------------------------------------------------------------------- model

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim, length, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.outer(torch.arange(length, dtype=torch.float64), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, h, kv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.h, self.kv, self.hd = h, kv, hd
        self.q_proj = nn.Linear(d, h * hd, bias=False)
        self.k_proj = nn.Linear(d, kv * hd, bias=False)
        self.v_proj = nn.Linear(d, kv * hd, bias=False)
        self.o_proj = nn.Linear(h * hd, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.h // self.kv  # query head i uses key/value head i // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.hd)) + mask
        out = torch.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(B, T, self.h * self.hd))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class Llama(nn.Module):
    """LlamaForCausalLM; parameter names equal the Hugging Face tensor names."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Inner(cfg)
        if not cfg["tie_word_embeddings"]:
            self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        cos, sin = rope_tables(cfg["head_dim"], cfg["max_position_embeddings"], cfg["rope_theta"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def init_weights(self, seed):
        g = torch.Generator().manual_seed(seed)
        std = 0.02
        resid_std = std / math.sqrt(2 * self.cfg["num_hidden_layers"])
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("layernorm.weight") or name == "model.norm.weight":
                    p.fill_(1.0)
                elif name.endswith(("o_proj.weight", "down_proj.weight")):
                    p.copy_(torch.randn(p.shape, generator=g) * resid_std)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * std)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.model.embed_tokens(ids)
        cos, sin = self.cos[:T], self.sin[:T]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        x = self.model.norm(x)
        w = self.model.embed_tokens.weight if self.cfg["tie_word_embeddings"] else self.lm_head.weight
        return x @ w.t()


# ----------------------------------------------------------------------------- safetensors

def save_safetensors(path, tensors):
    """Writes {name: tensor} as bf16 safetensors (8-byte LE header size, JSON header, raw data)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.bfloat16).contiguous()
        data = t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def load_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "BF16", name
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=np.int16).copy()
        out[name] = torch.from_numpy(arr).view(torch.bfloat16).float().reshape(info["shape"])
    return out


# ----------------------------------------------------------------------------- data and training

def prepare(args):
    """Returns (tokenizer, train ids, val ids, corpus stats), cached in the work directory."""
    fortunes = read_fortunes(FORTUNE_DIR)
    digest = hashlib.sha256()
    for name, text in fortunes:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    key = f"{digest.hexdigest()}-{args.seed}-{args.vocab_size}-{args.chat_fraction}"
    cache = os.path.join(args.work_dir, "data.pt")
    if os.path.exists(cache):
        blob = torch.load(cache)
        if blob["key"] == key:
            log("using cached tokenizer and data from", cache)
            return Tokenizer.from_json(blob["tokenizer"]), blob["train"], blob["val"], blob["stats"]
    log(f"read {len(fortunes)} fortunes from {FORTUNE_DIR}")
    train_docs, val_docs = build_documents(fortunes, args.seed, args.chat_fraction)
    t0 = time.time()
    tokens, merges = train_bpe(train_docs, args.vocab_size)
    tok = Tokenizer(tokens, merges)
    log(f"trained BPE: {len(tok.tokens)} tokens, {len(merges)} merges in {time.time() - t0:.0f}s")
    train = torch.tensor([i for d in train_docs for i in tok.encode(d)], dtype=torch.int16 if len(tok.tokens) < 32768 else torch.int32)
    val = torch.tensor([i for d in val_docs for i in tok.encode(d)], dtype=train.dtype)
    stats = {"fortunes": len(fortunes), "train_docs": len(train_docs), "val_docs": len(val_docs),
             "train_tokens": len(train), "val_tokens": len(val),
             "train_bytes": sum(len(d.encode()) for d in train_docs)}
    log("data:", stats)
    torch.save({"key": key, "tokenizer": tok.to_json(), "train": train, "val": val, "stats": stats}, cache + ".tmp")
    os.replace(cache + ".tmp", cache)
    return tok, train, val, stats


def batch(stream, seed, step, batch_size, context):
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(stream) - context - 1, (batch_size,), generator=g)
    rows = torch.stack([stream[s:s + context + 1].long() for s in starts.tolist()])
    return rows[:, :-1], rows[:, 1:]


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate(model, stream, args, n_batches=8):
    model.eval()
    losses = []
    for k in range(n_batches):
        x, y = batch(stream, args.seed + 7, k, args.batch_size, args.context)
        losses.append(F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item())
    model.train()
    return sum(losses) / len(losses)


def make_config(args, tok):
    n = len(tok.tokens) - len(SPECIALS)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": args.hidden,
        "intermediate_size": args.ffn,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "head_dim": args.hidden // args.heads,
        "hidden_act": "silu",
        "vocab_size": len(tok.tokens),
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "max_position_embeddings": args.context,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "bos_token_id": n + SPECIALS.index(EOT),
        "eos_token_id": n + SPECIALS.index(IM_END),
        "pad_token_id": n + SPECIALS.index(EOT),
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.0",
    }


def train(args, cfg, train_ids, val_ids):
    """Trains (resuming from the work directory's checkpoint) and returns (model, summary)."""
    torch.manual_seed(args.seed)
    model = Llama(cfg)
    model.init_weights(args.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    ckpt_path = os.path.join(args.work_dir, "checkpoint.pt")
    run_key = json.dumps([cfg, args.seed, args.lr, args.steps, args.warmup, args.batch_size,
                          args.weight_decay, len(train_ids)], sort_keys=True)
    step, history, train_seconds = 0, [], 0.0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        if ck["key"] == run_key:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
            step, history, train_seconds = ck["step"], ck["history"], ck["train_seconds"]
            log(f"resumed from {ckpt_path} at step {step}")
        else:
            log(f"ignoring {ckpt_path}: it was made with other settings")

    def save():
        torch.save({"key": run_key, "model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "history": history, "train_seconds": train_seconds}, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)

    deadline = START + args.minutes * 60
    last_ckpt = last_log = time.time()
    window = []
    model.train()
    while step < args.steps and time.time() < deadline:
        t0 = time.time()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        x, y = batch(train_ids, args.seed, step, args.batch_size, args.context)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        train_seconds += time.time() - t0
        window.append(loss.item())
        history.append(round(loss.item(), 4))
        if step % args.log_every == 0 or step == args.steps:
            tps = args.log_every * args.batch_size * args.context / max(1e-9, time.time() - last_log)
            log(f"step {step}/{args.steps} loss {sum(window) / len(window):.3f} lr {lr_at(step - 1, args):.2e} "
                f"{tps:.0f} tok/s  trained {train_seconds / 60:.1f} min")
            window, last_log = [], time.time()
        if step % args.eval_every == 0:
            log(f"step {step} validation loss {evaluate(model, val_ids, args):.3f}")
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            save()
            last_ckpt = time.time()
    save()
    finished = step >= args.steps
    if not finished:
        log(f"time budget reached at step {step} of {args.steps}; rerun the same command to resume")
    tail = history[-50:]
    summary = {"steps": step, "planned_steps": args.steps, "finished": finished,
               "train_minutes": round(train_seconds / 60, 1),
               "train_loss": round(sum(tail) / max(1, len(tail)), 3),
               "tokens_seen": step * args.batch_size * args.context}
    return model, summary


# ----------------------------------------------------------------------------- export and checks

def export(args, cfg, tok, model, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    n = len(tok.tokens) - len(SPECIALS)
    state = {k: v for k, v in model.state_dict().items() if k not in ("cos", "sin")}
    save_safetensors(os.path.join(out_dir, "model.safetensors"), state)

    def dump(name, obj, indent=2):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=indent, ensure_ascii=False)
            f.write("\n")

    dump("config.json", cfg)
    dump("tokenizer.json", tok.to_json(), indent=None)
    dump("tokenizer_config.json", tokenizer_config(tok, args.context))
    dump("generation_config.json", {
        "bos_token_id": n + SPECIALS.index(EOT),
        "eos_token_id": [n + SPECIALS.index(IM_END), n + SPECIALS.index(EOT)],
        "pad_token_id": n + SPECIALS.index(EOT),
        "do_sample": True,
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.95,
        "max_new_tokens": 128,
        "transformers_version": "4.46.0",
    })


@torch.no_grad()
def generate(model, ids, max_new, stop_ids, temperature=0.0, top_k=40, top_p=0.95, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = list(ids)
    out = []
    limit = model.cfg["max_position_embeddings"]
    for _ in range(max_new):
        logits = model(torch.tensor([ids[-limit:]]))[0, -1]
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            logits = logits / temperature
            vals, idx = torch.topk(logits, top_k)
            probs = torch.softmax(vals, -1)
            keep = torch.cumsum(probs, -1) - probs < top_p
            probs = probs * keep
            nxt = int(idx[torch.multinomial(probs / probs.sum(), 1, generator=g)])
        if nxt in stop_ids:
            break
        ids.append(nxt)
        out.append(nxt)
    return out


def render_chat(messages, add_generation_prompt=True):
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def check(out_dir, val_text):
    """Reloads the written folder, checks the tokenizer and samples text. Returns sample records."""
    with open(os.path.join(out_dir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(out_dir, "tokenizer.json")) as f:
        tok = Tokenizer.from_json(json.load(f))
    samples = [
        "Hello, world! Don't panic: naïve café — 42 apples, 3.14\tand\n\n  spaces  ",
        render_chat([{"role": "user", "content": "Tell me a fortune."}]),
        val_text,
    ]
    for s in samples:
        ids = tok.encode(s)
        assert tok.decode(ids) == s, f"tokenizer round trip failed for {s!r}"
    log(f"tokenizer round-trips {len(samples)} texts ({sum(len(s) for s in samples)} chars)")

    model = Llama(cfg)
    weights = load_safetensors(os.path.join(out_dir, "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and all(k in ("cos", "sin") for k in missing), (missing, unexpected)
    model.eval()
    eot, im_end = tok.special_id(EOT), tok.special_id(IM_END)
    stops = {eot, im_end}
    records = []
    prompts = [
        ("completion", "The meaning of life is", 0.0),
        ("completion", "A programmer", 0.8),
        ("chat", render_chat([{"role": "user", "content": "Tell me a fortune."}]), 0.0),
        ("chat", render_chat([{"role": "user", "content": "Say something wise about computers."}]), 0.8),
        ("chat", render_chat([{"role": "user", "content": "Give me a quote about love."}]), 0.8),
    ]
    for kind, prompt, temp in prompts:
        ids = tok.encode(prompt)
        if kind == "completion":
            ids = [eot] + ids
        new = generate(model, ids, 80, stops, temperature=temp, seed=1)
        text = tok.decode(new)
        shown = prompt.split(f"{IM_START}user\n")[-1].split(IM_END)[0] if kind == "chat" else prompt
        records.append({"kind": kind, "prompt": shown, "temperature": temp, "output": text})
        log(f"[{kind}, temperature {temp}] {shown!r} -> {text!r}")
    letters = sum(c.isalpha() or c.isspace() for r in records for c in r["output"])
    total = sum(len(r["output"]) for r in records)
    assert total > 0 and letters / total > 0.75, "samples do not look like text"
    return records


def write_card(out_dir, args, cfg, params, stats, summary, val_loss, samples, command):
    head = cfg["head_dim"]
    tok_total = cfg["vocab_size"]
    n = tok_total - len(SPECIALS)
    sample_lines = []
    for s in samples:
        mode = "greedy" if s["temperature"] == 0 else f"temperature {s['temperature']}, top-k 40, top-p 0.95"
        sample_lines.append(f"- {s['kind']} ({mode}): `{s['prompt']}` →\n\n  ```\n  "
                            + s["output"].replace("\n", "\n  ") + "\n  ```")
    status = "" if summary["finished"] else (
        f"\n**Note:** training stopped at the wall-clock budget after {summary['steps']} of "
        f"{summary['planned_steps']} planned steps.\n")
    text = f"""# meshlm-demo-{params_label(params)}

A tiny Llama-architecture language model, trained from scratch on fortune-cookie
quotes so that meshlm can show real text on a machine with no network. It writes
English-like sentences in the style of `fortune`; it knows nothing and is not
useful beyond demonstrating and testing the inference stack.
{status}
## Model

| | |
|---|---|
| architecture | `LlamaForCausalLM` (RMSNorm, RoPE θ=10000 rotate-half, GQA, SiLU-gated MLP) |
| parameters | {params:,} ({params / 1e6:.2f} M), embeddings tied with the output head |
| layers | {cfg['num_hidden_layers']} |
| hidden size | {cfg['hidden_size']} |
| MLP size | {cfg['intermediate_size']} |
| attention heads | {cfg['num_attention_heads']} query, {cfg['num_key_value_heads']} key/value, head dim {head} |
| context | {cfg['max_position_embeddings']} tokens |
| vocabulary | {tok_total} (byte-level BPE) |
| weights | `model.safetensors`, bfloat16 |

## Tokenizer

Byte-level BPE in the GPT-2 style, trained by the same script on the training text:
bytes are mapped to printable characters, the `ByteLevel` pre-tokenizer splits with
GPT-2's pattern `{GPT2_PATTERN}`, ids 0–255 are the single bytes, ids 256–{n - 1}
are merges, and the special tokens are `<|endoftext|>` = {n}, `<|im_start|>` = {n + 1},
`<|im_end|>` = {n + 2}. No token is added automatically when encoding.

Chat uses ChatML (`tokenizer_config.json` has the template):

```
<|im_start|>user
Tell me a fortune.<|im_end|>
<|im_start|>assistant
```

Generation stops at `<|im_end|>` (chat) or `<|endoftext|>` (plain text); both are in
`generation_config.json`, which also sets temperature 0.8, top-k 40, top-p 0.95.

## Data

The English fortune files of Debian's `fortunes` and `fortunes-min` packages
(fortune-mod 1.99.1, `/usr/share/games/fortunes`), except `ascii-art` and `ethnic`;
the offensive collection (`fortunes-off`) is not used. Fortunes with drawings,
control characters or non-Latin text are dropped, leaving {stats['fortunes']:,} fortunes.
Every 50th fortune (after a seeded shuffle) is held out for validation. Each
training fortune appears once as plain text and, with probability {args.chat_fraction},
once more as a ChatML conversation in which a user asks for a fortune (often about
the topic of the fortune's file) and the assistant answers with it. Documents are
separated by `<|endoftext|>`: {stats['train_tokens']:,} training tokens
({stats['train_bytes']:,} bytes), {stats['val_tokens']:,} validation tokens.

**Licence.** The fortune files are part of Debian main. Debian's copyright file for
the packages (`/usr/share/doc/fortunes/copyright`) places fortune-mod under the BSD
licence of the University of California (1991), which permits redistribution and
use, with or without modification, provided the copyright notice, conditions and
disclaimer are retained. The quotations keep their attributions in the source files.
This model, derived from that text, is distributed under the same terms: see
`LICENSE` in this folder, which reproduces that notice.

## Training

Plain PyTorch (Debian's python3-torch), one CPU thread, fp32, AdamW (β = 0.9, 0.95,
weight decay {args.weight_decay}), peak learning rate {args.lr} with {args.warmup} warm-up steps and
cosine decay to 10 %, batches of {args.batch_size} × {args.context} tokens drawn at random offsets,
gradient clipping at 1.0, seed {args.seed}.

| | |
|---|---|
| steps | {summary['steps']} |
| tokens seen | {summary['tokens_seen']:,} |
| training time | {summary['train_minutes']} min (1 thread, shared 2-core machine) |
| final training loss | {summary['train_loss']} (mean of the last 50 steps) |
| validation loss | {val_loss:.3f} (held-out plain fortunes) |

## Samples

Produced by the training script from the saved bf16 weights:

{chr(10).join(sample_lines)}

## Retrain

From the repository root (installs python3-torch, python3-numpy, python3-regex, libopenblas0-pthread,
fortunes and fortunes-min with apt-get if missing, then trains at `nice -n 19`):

```
{command}
```

The result is deterministic for a given seed and settings on a given CPU and BLAS
(the wrapper uses OpenBLAS, single-threaded; the weights are identical whether or
not the run was interrupted). Checkpoints and the tokenized data go to `--work-dir`
(default `/tmp/meshlm-demo-train`). When the `--minutes` budget runs out before
`--steps`, the model is written as it stands and rerunning the command resumes.
The planned steps took {summary['train_minutes']} minutes of training here on one thread of a busy
2-core machine; on an idle core they take about half an hour.
"""
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


def write_license(out_dir):
    """Copies the BSD notice that covers the training text from Debian's copyright file."""
    with open("/usr/share/doc/fortunes/copyright", encoding="utf-8") as f:
        text = f.read()
    start = text.index("Copyright (c) 1991 The Regents of the University of California.")
    end = text.index("SUCH DAMAGE.", start) + len("SUCH DAMAGE.")
    with open(os.path.join(out_dir, "LICENSE"), "w", encoding="utf-8") as f:
        f.write("The weights and tokenizer in this folder were trained on the fortune files of Debian's\n"
                "fortunes and fortunes-min packages (fortune-mod 1.99.1), which are distributed under\n"
                "the following licence (from /usr/share/doc/fortunes/copyright). They are distributed\n"
                "under the same terms.\n\n" + text[start:end] + "\n")


def params_label(n):
    return f"{round(n / 1e6)}m"


START = time.time()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--minutes", type=float, default=40, help="wall-clock budget; then stop, save, export")
    ap.add_argument("--steps", type=int, default=1600, help="planned optimizer steps (sets the LR schedule)")
    ap.add_argument("--out", default=None, help="output folder (default models/meshlm-demo-<size>)")
    ap.add_argument("--work-dir", default="/tmp/meshlm-demo-train", help="checkpoints and caches")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--chat-fraction", type=float, default=0.5)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--ckpt-minutes", type=float, default=3)
    ap.add_argument("--prepare-only", action="store_true", help="build tokenizer and data, then stop")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    os.makedirs(args.work_dir, exist_ok=True)

    tok, train_ids, val_ids, stats = prepare(args)
    if args.prepare_only:
        return
    cfg = make_config(args, tok)
    probe = Llama(cfg)
    params = sum(p.numel() for p in probe.parameters())
    del probe
    out_dir = args.out or os.path.join("models", f"meshlm-demo-{params_label(params)}")
    log(f"model: {params:,} parameters -> {out_dir}")

    model, summary = train(args, cfg, train_ids, val_ids)
    val_loss = evaluate(model, val_ids, args)
    log(f"training: {summary}; validation loss {val_loss:.3f}")
    export(args, cfg, tok, model, out_dir)
    samples = check(out_dir, tok.decode(val_ids[:400].tolist()))
    command = "tools/train_demo_model.sh " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in [("seed", args.seed), ("steps", args.steps), ("minutes", args.minutes)])
    write_card(out_dir, args, cfg, params, stats, summary, val_loss, samples, command)
    write_license(out_dir)
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    log(f"wrote {out_dir} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
