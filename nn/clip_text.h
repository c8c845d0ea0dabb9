// The text side of the CLIP tokenizer (nn/clip_tokenizer.h): UTF-8, the
// Unicode properties and transforms the two references apply before BPE, and
// the CLIP pre-tokenizer. Text is handled as code points (std::u32string).
//
// The tables (nn/tokenizer_tables.inc, made by tools/make_tokenizer_tables.py)
// are Python 3.11's unicodedata (Unicode 14): what str.lower,
// unicodedata.normalize and so OpenCLIP's cleaning use. Hugging Face's Rust
// tokenizers and the `regex` module carry newer Unicode versions; they differ
// only on code points assigned after Unicode 14 (docs/tokenizer.md).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace cf::clip {

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF);
// the error names the byte offset.
StatusOr<std::u32string> DecodeUtf8(std::string_view text);
std::string EncodeUtf8(std::u32string_view text);

// General category L* (Lu Ll Lt Lm Lo), N* (Nd Nl No), Nd.
bool IsLetter(char32_t c);
bool IsNumber(char32_t c);
bool IsDecimal(char32_t c);
// Unicode White_Space: `\s` of the `regex` module and of Oniguruma.
bool IsWhiteSpace(char32_t c);
// Python's str.isspace (White_Space plus U+001C..U+001F): str.split() and strip().
bool IsPythonSpace(char32_t c);

// Each code point lowercased on its own (full mappings, no context): the
// tokenizers library's Lowercase normalizer.
std::u32string LowercaseChars(std::u32string_view text);
// Python's str.lower(): the same plus the final-sigma rule for U+03A3.
std::u32string PythonLower(std::u32string_view text);
// Unicode normalization form C.
std::u32string Nfc(std::u32string_view text);

// Python's html.unescape: named references of HTML5 (with and without the
// semicolon, longest prefix for the legacy ones), decimal and hex references
// with the HTML5 replacement rules.
std::u32string HtmlUnescape(std::u32string_view text);
// The part of ftfy.fix_text (ftfy 6, default configuration) that prompts hit:
// per line, until nothing changes: HTML entities with semicolons (ftfy's
// table, skipped from the first line that contains '<' on), C1 controls read as
// Windows-1252, Latin ligatures, half/full-width forms, curly quotes, line
// breaks, ANSI terminal escapes, unwanted control characters, then NFC. Not
// done: fix_encoding (mojibake detection and repair), see docs/tokenizer.md.
std::u32string FtfyFixText(std::u32string_view text);
// OpenCLIP's clean='lower': ftfy, html.unescape twice, whitespace runs to one
// space, trimmed, str.lower().
std::u32string OpenClipClean(std::u32string_view text);

// transformers 4's slow CLIPTokenizer without ftfy: BERT's BasicTokenizer
// (strip_accents=False, do_split_on_punc=False) and " ".join: NUL, U+FFFD and
// other-category (C*) characters but \t \n \r removed, those and Zs to a
// space, spaces around CJK ideographs, NFC, split on str.isspace, each word
// str.lower()ed.
std::u32string BertBasicClean(std::u32string_view text);

// transformers 4's slow CLIPTokenizer with ftfy installed: FtfyFixText, runs
// of White_Space to one space, trimmed, str.lower() (no html.unescape).
std::u32string HfFtfyClean(std::u32string_view text);

// The CLIP pre-tokenizer: all matches, left to right, of
//   SPECIAL|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// where SPECIAL are `specials` in order. `ignore_case` is re.IGNORECASE (used
// by OpenCLIP and transformers 4's slow tokenizer; on lowercased text it
// matters only for "'ſ", which matches 's, and U+0345, which matches nothing).
std::vector<std::u32string> ClipSplit(std::u32string_view text, const std::vector<std::u32string>& specials,
                                      bool ignore_case);
// The ByteLevel pre-tokenizer's GPT-2 split of a piece without whitespace:
//   's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+
std::vector<std::u32string> Gpt2Split(std::u32string_view piece);

// GPT-2's byte-to-unicode table: printable bytes map to themselves, the other
// 68 to U+0100 upwards in byte order.
char32_t ByteToUnicode(uint8_t b);
// The UTF-8 bytes of `text` mapped through ByteToUnicode, one string (UTF-8)
// per byte: the symbols BPE starts from.
std::vector<std::string> ByteSymbols(std::u32string_view text);

}  // namespace cf::clip
