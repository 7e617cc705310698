// UTF-8 helpers and Unicode properties for the tokenizer (ICU underneath).
//
// The properties follow Rust's `char` methods (is_whitespace, is_alphanumeric), since
// Hugging Face's tokenizers library is written in Rust and we must match its splits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace meshlm::tok {

/// Decodes the code point at s[*pos] and advances *pos. The input must be valid UTF-8.
char32_t NextCodePoint(std::string_view s, size_t* pos);
/// Length in bytes of the UTF-8 sequence that starts with `lead` (1 for invalid leads).
size_t Utf8SeqLen(uint8_t lead);
void AppendUtf8(char32_t cp, std::string* out);
/// Byte offset of the first invalid sequence, or npos when `s` is valid UTF-8.
size_t FindInvalidUtf8(std::string_view s);
/// Appends `bytes` to *out, replacing each maximal invalid subsequence with U+FFFD
/// (the rule of Rust's String::from_utf8_lossy).
void AppendUtf8Lossy(std::string_view bytes, std::string* out);
/// Number of bytes at the end of `s` that form an incomplete (truncated but so far
/// valid) UTF-8 sequence; 0 when `s` ends on a boundary.
size_t IncompleteUtf8Tail(std::string_view s);

bool IsWhitespace(char32_t cp);    // Unicode White_Space, as Rust char::is_whitespace
bool IsAlphanumeric(char32_t cp);  // Alphabetic or Numeric, as Rust char::is_alphanumeric
bool IsDigit(char32_t cp);         // General category Nd... as HF's Digits: char::is_numeric

enum class NormalForm { kNfc, kNfkc, kNfd, kNfkd };
/// Unicode normalization through ICU. `s` must be valid UTF-8.
Result<std::string> Normalize(std::string_view s, NormalForm form);

/// GPT-2's byte-level alphabet: every byte maps to one printable code point.
char32_t ByteToUnicode(uint8_t b);
/// Inverse of ByteToUnicode; returns -1 for code points outside the alphabet.
int UnicodeToByte(char32_t cp);

}  // namespace meshlm::tok
