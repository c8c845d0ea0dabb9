// The CLIP tokenizer: loading both references' files, the encode pipelines
// and BPE (see nn/clip_tokenizer.h; the text pieces are in nn/clip_text.cc).
#include "nn/clip_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "nn/clip_text.h"

#if CF_HAS_ZLIB
#include <zlib.h>
#endif

namespace cf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kStartOfText = "<|startoftext|>";
constexpr const char* kEndOfText = "<|endoftext|>";
// OpenCLIP's slice of the merges file: lines [1, 49152 - 256 - 2 + 1).
constexpr int kOpenClipMerges = 49152 - 256 - 2;

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read '", path, "'"));
  return s.str();
}

StatusOr<std::string> Gunzip(const std::string& path) {
#if CF_HAS_ZLIB
  if (!fs::is_regular_file(path)) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::string out;
  char buf[1 << 16];
  int n = 0;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  int err = Z_OK;
  const std::string msg = n < 0 ? gzerror(f, &err) : "";
  gzclose(f);
  if (n < 0) return absl::DataLossError(absl::StrCat("'", path, "' is not a readable gzip file: ", msg));
  return out;
#else
  return absl::UnimplementedError(
      absl::StrCat("cannot read '", path, "': this build has no zlib (install zlib1g-dev and reconfigure)"));
#endif
}

// "line L, column C" of a byte offset.
std::string Position(const std::string& text, size_t offset) {
  offset = std::min(offset, text.size());
  const size_t line = 1 + std::count(text.begin(), text.begin() + offset, '\n');
  const size_t start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  const size_t col = start == std::string::npos ? offset + 1 : offset - start;
  return absl::StrCat("line ", line, ", column ", col);
}

StatusOr<json> ParseJson(const std::string& path) {
  CF_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte is 1-based: the byte after the last one read.
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not valid JSON at ", Position(text, e.byte == 0 ? 0 : e.byte - 1), ": ",
                     e.what()));
  }
}

// A special token's declaration in a config file: a string, or an object with
// "content" (an AddedToken).
struct TokenDecl {
  std::string content;
  bool normalized = false;  // a string declares normalized = false
};

StatusOr<std::optional<TokenDecl>> ReadDecl(const json& j, const std::string& key, const std::string& path) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return std::optional<TokenDecl>();
  const json& v = j[key];
  if (v.is_string()) return std::optional<TokenDecl>(TokenDecl{v.get<std::string>(), false});
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    for (const char* flag : {"lstrip", "rstrip", "single_word"})
      if (v.contains(flag) && v[flag].is_boolean() && v[flag].get<bool>())
        return absl::UnimplementedError(absl::StrCat("'", path, "': ", key, " has ", flag,
                                                     " = true, which this tokenizer does not implement"));
    const bool normalized = v.contains("normalized") && v["normalized"].is_boolean() && v["normalized"].get<bool>();
    return std::optional<TokenDecl>(TokenDecl{v["content"].get<std::string>(), normalized});
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", path, "': ", key, " is neither a string nor an object with a string \"content\""));
}

std::u32string ToU32(const std::string& s) { return clip::DecodeUtf8(s).value_or(std::u32string()); }

// The leftmost, then longest, occurrence of any of `tokens` in text[from, ...):
// (position, index into tokens), or (npos, 0).
template <typename Tokens>
std::pair<size_t, size_t> FindToken(const std::u32string& text, size_t from, const Tokens& tokens) {
  for (size_t i = from; i < text.size(); ++i) {
    size_t best = tokens.size(), best_len = 0;
    for (size_t t = 0; t < tokens.size(); ++t) {
      const std::u32string& c = tokens[t]->content;
      if (c.size() > best_len && text.compare(i, c.size(), c) == 0) best = t, best_len = c.size();
    }
    if (best < tokens.size()) return {i, best};
  }
  return {std::u32string::npos, 0};
}

}  // namespace

const char* ClipTokenizerFlavorName(ClipTokenizerFlavor f) {
  switch (f) {
    case ClipTokenizerFlavor::kHuggingFace: return "huggingface";
    case ClipTokenizerFlavor::kHuggingFaceBasic: return "huggingface-basic";
    case ClipTokenizerFlavor::kHuggingFaceFtfy: return "huggingface-ftfy";
    case ClipTokenizerFlavor::kOpenClip: return "openclip";
  }
  return "?";
}

ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

StatusOr<ClipTokenizer> ClipTokenizer::Load(const std::string& path, ClipTokenizerFlavor folder_flavor) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return LoadHuggingFace(path, folder_flavor);
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    if (folder_flavor != ClipTokenizerFlavor::kHuggingFace)
      return absl::InvalidArgumentError(absl::StrCat("tokenizer '", path, "' is OpenCLIP's; ",
                                                     ClipTokenizerFlavorName(folder_flavor),
                                                     " applies to a Hugging Face folder"));
    return LoadOpenClip(path);
  }
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat("tokenizer '", path, "' does not exist"));
  return absl::InvalidArgumentError(absl::StrCat(
      "tokenizer '", path, "' is neither a Hugging Face tokenizer folder nor OpenCLIP's bpe_simple_vocab_16e6.txt.gz"));
}

StatusOr<ClipTokenizer> ClipTokenizer::LoadHuggingFace(const std::string& folder, ClipTokenizerFlavor flavor) {
  if (flavor == ClipTokenizerFlavor::kOpenClip)
    return absl::InvalidArgumentError(absl::StrCat("tokenizer '", folder, "': a folder is read by a Hugging Face flavor"));
  ClipTokenizer tok;
  tok.flavor_ = flavor;
  tok.source_ = folder;
  const std::string vocab_path = (fs::path(folder) / "vocab.json").string();
  const std::string merges_path = (fs::path(folder) / "merges.txt").string();

  CF_ASSIGN_OR_RETURN(json vocab, ParseJson(vocab_path));
  if (!vocab.is_object() || vocab.empty())
    return absl::InvalidArgumentError(absl::StrCat("'", vocab_path, "' is not a JSON object of token -> id"));
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0)
      return absl::InvalidArgumentError(
          absl::StrCat("'", vocab_path, "': the id of token '", token, "' is not a non-negative integer"));
    tok.vocab_[token] = id.get<int64_t>();
  }

  CF_ASSIGN_OR_RETURN(std::string merges, ReadFile(merges_path));
  int line_no = 0;
  int32_t rank = 0;
  for (absl::string_view line : absl::StrSplit(merges, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && absl::StartsWith(line, "#version"))) continue;
    const std::vector<std::string> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty())
      return absl::InvalidArgumentError(
          absl::StrCat("'", merges_path, "' line ", line_no, ": '", line, "' is not two symbols separated by a space"));
    for (const std::string& s : {parts[0], parts[1], parts[0] + parts[1]})
      if (!tok.vocab_.contains(s))
        return absl::InvalidArgumentError(absl::StrCat("'", merges_path, "' line ", line_no, ": '", s,
                                                       "' is not in vocab.json"));
    tok.ranks_[absl::StrCat(parts[0], " ", parts[1])] = rank++;  // a repeated pair keeps its last rank
  }
  if (rank == 0) return absl::InvalidArgumentError(absl::StrCat("'", merges_path, "' has no merges"));

  // Extra tokens (textual inversion) would be split out like special tokens
  // with ids past the vocabulary: not implemented, so refused rather than ignored.
  if (const std::string extra = (fs::path(folder) / "added_tokens.json").string(); fs::exists(extra)) {
    CF_ASSIGN_OR_RETURN(json added, ParseJson(extra));
    if (!added.is_object() || !added.empty())
      return absl::UnimplementedError(absl::StrCat(
          "'", extra, "': extra added tokens (e.g. textual inversion) are not supported by this tokenizer"));
  }
  // Special tokens: special_tokens_map.json overrides tokenizer_config.json;
  // transformers' CLIPTokenizer defaults otherwise.
  json config = json::object(), special_map = json::object();
  const std::string config_path = (fs::path(folder) / "tokenizer_config.json").string();
  const std::string map_path = (fs::path(folder) / "special_tokens_map.json").string();
  if (fs::exists(config_path)) {
    CF_ASSIGN_OR_RETURN(config, ParseJson(config_path));
  }
  if (fs::exists(map_path)) {
    CF_ASSIGN_OR_RETURN(special_map, ParseJson(map_path));
  }
  struct Role {
    const char* key;
    std::string fallback;
    int64_t* id;
  };
  int64_t unk = -1;
  const Role roles[] = {{"bos_token", kStartOfText, &tok.bos_id_},
                        {"eos_token", kEndOfText, &tok.eos_id_},
                        {"unk_token", kEndOfText, &unk},
                        {"pad_token", kEndOfText, &tok.pad_id_}};
  // added_tokens_decoder (newer files): explicit ids and flags.
  absl::flat_hash_map<std::string, AddedToken> explicit_tokens;
  if (config.contains("added_tokens_decoder")) {
    const json& d = config["added_tokens_decoder"];
    if (!d.is_object())
      return absl::InvalidArgumentError(absl::StrCat("'", config_path, "': added_tokens_decoder is not an object"));
    for (const auto& [id_text, entry] : d.items()) {
      int64_t id = 0;
      if (!absl::SimpleAtoi(id_text, &id) || id < 0)
        return absl::InvalidArgumentError(
            absl::StrCat("'", config_path, "': added_tokens_decoder key '", id_text, "' is not an id"));
      CF_ASSIGN_OR_RETURN(std::optional<TokenDecl> decl,
                          ReadDecl(d, id_text, absl::StrCat(config_path, "' added_tokens_decoder '", id_text)));
      if (!decl.has_value() || !entry.is_object())
        return absl::InvalidArgumentError(
            absl::StrCat("'", config_path, "': added_tokens_decoder '", id_text, "' is not an AddedToken object"));
      explicit_tokens[decl->content] = AddedToken{ToU32(decl->content), id, decl->normalized};
    }
  }
  // Otherwise a token is matched after normalisation only when every role
  // naming it declares normalized = true (what transformers 5.24 does for the
  // SD1.5 and SDXL files; docs/tokenizer.md).
  absl::flat_hash_map<std::string, bool> normalized;
  std::vector<std::string> order;
  for (const Role& r : roles) {
    std::optional<TokenDecl> decl;
    CF_ASSIGN_OR_RETURN(decl, ReadDecl(special_map, r.key, map_path));
    if (!decl.has_value()) {
      CF_ASSIGN_OR_RETURN(decl, ReadDecl(config, r.key, config_path));
    }
    const TokenDecl d = decl.value_or(TokenDecl{r.fallback, false});
    if (!normalized.contains(d.content)) {
      normalized[d.content] = true;
      order.push_back(d.content);
    }
    normalized[d.content] = normalized[d.content] && d.normalized;
    if (auto it = explicit_tokens.find(d.content); it != explicit_tokens.end()) {
      *r.id = it->second.id;
    } else if (auto v = tok.vocab_.find(d.content); v != tok.vocab_.end()) {
      *r.id = v->second;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer '", folder, "': ", r.key, " '", d.content,
                                                     "' is neither in vocab.json nor in added_tokens_decoder"));
    }
  }
  tok.unk_id_ = unk;
  for (const auto& [content, t] : explicit_tokens) tok.added_.push_back(t);
  for (const std::string& content : order)
    if (!explicit_tokens.contains(content))
      tok.added_.push_back(AddedToken{ToU32(content), tok.vocab_.at(content), normalized.at(content)});
  std::sort(tok.added_.begin(), tok.added_.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });

  if (config.contains("model_max_length")) {
    const json& m = config["model_max_length"];
    // transformers writes 1e30 for "no limit": keep the CLIP context then.
    if (m.is_number() && m.get<double>() >= 2 && m.get<double>() <= 1e6) tok.model_max_length_ = m.get<int64_t>();
  }
  tok.regex_specials_ = {ToU32(kStartOfText), ToU32(kEndOfText)};
  return tok;
}

StatusOr<ClipTokenizer> ClipTokenizer::LoadOpenClip(const std::string& gz_path) {
  ClipTokenizer tok;
  tok.flavor_ = ClipTokenizerFlavor::kOpenClip;
  tok.source_ = gz_path;
  CF_ASSIGN_OR_RETURN(std::string text, Gunzip(gz_path));
  if (!clip::DecodeUtf8(text).ok())
    return absl::InvalidArgumentError(absl::StrCat("'", gz_path, "' is not UTF-8 text"));
  const std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (lines.size() < 1 + static_cast<size_t>(kOpenClipMerges))
    return absl::InvalidArgumentError(absl::StrCat("'", gz_path, "' has ", lines.size() == 0 ? 0 : lines.size() - 1,
                                                   " merge lines after its header; OpenCLIP uses the first ",
                                                   kOpenClipMerges));
  // vocab: the 256 byte symbols in bytes_to_unicode's order (printable bytes
  // first), the same with "</w>", the merges, the two special tokens; a
  // repeated entry keeps its last id, as dict(zip(vocab, range(...))) does.
  std::vector<std::string> vocab;
  std::vector<uint8_t> byte_order;
  for (int b = 0; b < 256; ++b)
    if (clip::ByteToUnicode(static_cast<uint8_t>(b)) == static_cast<char32_t>(b)) byte_order.push_back(b);
  for (int b = 0; b < 256; ++b)
    if (clip::ByteToUnicode(static_cast<uint8_t>(b)) != static_cast<char32_t>(b)) byte_order.push_back(b);
  for (uint8_t b : byte_order) vocab.push_back(clip::EncodeUtf8(std::u32string(1, clip::ByteToUnicode(b))));
  for (int i = 0; i < 256; ++i) vocab.push_back(vocab[i] + "</w>");
  for (int i = 1; i <= kOpenClipMerges; ++i) {
    // merge.split(): any whitespace.
    const std::vector<std::string> parts = absl::StrSplit(lines[i], absl::ByAnyChar(" \t\r\f\v"), absl::SkipEmpty());
    if (parts.size() != 2)
      return absl::InvalidArgumentError(absl::StrCat("'", gz_path, "' line ", i + 1, ": '", lines[i],
                                                     "' is not two symbols separated by a space"));
    tok.ranks_[absl::StrCat(parts[0], " ", parts[1])] = i - 1;
    vocab.push_back(parts[0] + parts[1]);
  }
  vocab.push_back("<start_of_text>");
  vocab.push_back("<end_of_text>");
  for (size_t i = 0; i < vocab.size(); ++i) tok.vocab_[vocab[i]] = static_cast<int64_t>(i);
  tok.bos_id_ = tok.vocab_.at("<start_of_text>");
  tok.eos_id_ = tok.vocab_.at("<end_of_text>");
  tok.pad_id_ = 0;
  tok.regex_specials_ = {U"<start_of_text>", U"<end_of_text>"};
  return tok;
}

int64_t ClipTokenizer::TokenId(const std::string& token) const {
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

std::vector<std::string> ClipTokenizer::Bpe(const std::vector<std::string>& symbols) const {
  std::vector<std::string> word = symbols;
  if (word.empty()) return word;
  word.back() += "</w>";
  std::string key;
  while (word.size() > 1) {
    // The pair with the lowest rank, then every occurrence of it merged left to right.
    int32_t best = std::numeric_limits<int32_t>::max();
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      key.assign(word[i]).append(" ").append(word[i + 1]);
      const auto it = ranks_.find(key);
      if (it != ranks_.end() && it->second < best) best = it->second, best_at = i;
    }
    if (best == std::numeric_limits<int32_t>::max()) break;
    const std::string first = word[best_at], second = word[best_at + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word = std::move(merged);
  }
  return word;
}

StatusOr<std::vector<int64_t>> ClipTokenizer::EncodeWord(const std::u32string& word) const {
  const std::string key = clip::EncodeUtf8(word);
  {
    std::lock_guard<std::mutex> lock(*cache_mu_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  std::vector<int64_t> ids;
  for (const std::string& piece : Bpe(clip::ByteSymbols(word))) {
    const auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      ids.push_back(it->second);
    } else if (unk_id_ >= 0) {
      ids.push_back(unk_id_);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer '", source_, "': BPE piece '", piece, "' of '", key, "' is not in the vocabulary"));
    }
  }
  std::lock_guard<std::mutex> lock(*cache_mu_);
  cache_.emplace(key, ids);
  return ids;
}

Status ClipTokenizer::EncodeHuggingFace(const std::u32string& text, std::vector<int64_t>* ids) const {
  std::vector<const AddedToken*> raw, normalized;
  for (const AddedToken& t : added_) (t.normalized ? normalized : raw).push_back(&t);
  // Special tokens are split out of the text (raw ones first), the rest is
  // normalised and pre-tokenised.
  auto pre_tokenize = [&](const std::u32string& piece) -> Status {
    for (const std::u32string& match : clip::ClipSplit(piece, regex_specials_, false)) {
      for (const std::u32string& word : clip::Gpt2Split(match)) {
        CF_ASSIGN_OR_RETURN(std::vector<int64_t> w, EncodeWord(word));
        ids->insert(ids->end(), w.begin(), w.end());
      }
    }
    return absl::OkStatus();
  };
  auto normalize_and_encode = [&](std::u32string_view piece) -> Status {
    // NFC, Replace(\s+ -> " "), Lowercase.
    const std::u32string nfc = clip::Nfc(piece);
    std::u32string spaced;
    for (size_t i = 0; i < nfc.size(); ++i) {
      if (!clip::IsWhiteSpace(nfc[i])) {
        spaced.push_back(nfc[i]);
      } else if (i == 0 || !clip::IsWhiteSpace(nfc[i - 1])) {
        spaced.push_back(' ');
      }
    }
    const std::u32string norm = clip::LowercaseChars(spaced);
    for (size_t pos = 0; pos < norm.size();) {
      const auto [at, t] = FindToken(norm, pos, normalized);
      CF_RETURN_IF_ERROR(pre_tokenize(norm.substr(pos, at == std::u32string::npos ? std::u32string::npos : at - pos)));
      if (at == std::u32string::npos) break;
      ids->push_back(normalized[t]->id);
      pos = at + normalized[t]->content.size();
    }
    return absl::OkStatus();
  };
  for (size_t pos = 0; pos < text.size();) {
    const auto [at, t] = FindToken(text, pos, raw);
    const size_t end = at == std::u32string::npos ? text.size() : at;
    CF_RETURN_IF_ERROR(normalize_and_encode(std::u32string_view(text).substr(pos, end - pos)));
    if (at == std::u32string::npos) break;
    ids->push_back(raw[t]->id);
    pos = at + raw[t]->content.size();
  }
  return absl::OkStatus();
}

int64_t ClipTokenizer::RegexSpecialId(const std::u32string& word) const {
  if (std::find(regex_specials_.begin(), regex_specials_.end(), word) == regex_specials_.end()) return -1;
  return TokenId(clip::EncodeUtf8(word));
}

Status ClipTokenizer::EncodeHuggingFaceSlow(const std::u32string& text, std::vector<int64_t>* ids) const {
  // The added tokens are split out of the raw text (all of them: the slow
  // tokenizer does not lowercase first); each piece is cleaned on its own.
  std::vector<const AddedToken*> tokens;
  for (const AddedToken& t : added_) tokens.push_back(&t);
  for (size_t pos = 0; pos < text.size();) {
    const auto [at, t] = FindToken(text, pos, tokens);
    const size_t end = at == std::u32string::npos ? text.size() : at;
    const std::u32string_view piece = std::u32string_view(text).substr(pos, end - pos);
    const std::u32string clean = flavor_ == ClipTokenizerFlavor::kHuggingFaceFtfy ? clip::HfFtfyClean(piece)
                                                                                   : clip::BertBasicClean(piece);
    for (const std::u32string& word : clip::ClipSplit(clean, regex_specials_, true)) {
      if (const int64_t id = RegexSpecialId(word); id >= 0) {  // in the slow BPE cache: no BPE
        ids->push_back(id);
        continue;
      }
      CF_ASSIGN_OR_RETURN(std::vector<int64_t> w, EncodeWord(word));
      ids->insert(ids->end(), w.begin(), w.end());
    }
    if (at == std::u32string::npos) break;
    ids->push_back(tokens[t]->id);
    pos = at + tokens[t]->content.size();
  }
  return absl::OkStatus();
}

Status ClipTokenizer::EncodeOpenClip(const std::u32string& text, std::vector<int64_t>* ids) const {
  for (const std::u32string& word : clip::ClipSplit(clip::OpenClipClean(text), regex_specials_, true)) {
    if (const int64_t id = RegexSpecialId(word); id >= 0) {  // their own cache entries: no BPE
      ids->push_back(id);
      continue;
    }
    CF_ASSIGN_OR_RETURN(std::vector<int64_t> w, EncodeWord(word));
    ids->insert(ids->end(), w.begin(), w.end());
  }
  return absl::OkStatus();
}

StatusOr<std::vector<int64_t>> ClipTokenizer::Encode(std::string_view text) const {
  CF_ASSIGN_OR_RETURN(std::u32string u, clip::DecodeUtf8(text));
  std::vector<int64_t> ids;
  switch (flavor_) {
    case ClipTokenizerFlavor::kHuggingFace: CF_RETURN_IF_ERROR(EncodeHuggingFace(u, &ids)); break;
    case ClipTokenizerFlavor::kHuggingFaceBasic:
    case ClipTokenizerFlavor::kHuggingFaceFtfy: CF_RETURN_IF_ERROR(EncodeHuggingFaceSlow(u, &ids)); break;
    case ClipTokenizerFlavor::kOpenClip: CF_RETURN_IF_ERROR(EncodeOpenClip(u, &ids)); break;
  }
  return ids;
}

StatusOr<ClipEncoding> ClipTokenizer::Tokenize(std::string_view text, int64_t max_length) const {
  if (max_length <= 0) max_length = model_max_length_;
  if (max_length < 2)
    return absl::InvalidArgumentError(absl::StrCat("max_length ", max_length, " leaves no room for bos and eos"));
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> content, Encode(text));
  if (static_cast<int64_t>(content.size()) > max_length - 2) content.resize(static_cast<size_t>(max_length - 2));
  ClipEncoding e;
  e.ids.reserve(static_cast<size_t>(max_length));
  e.ids.push_back(bos_id_);
  e.ids.insert(e.ids.end(), content.begin(), content.end());
  e.ids.push_back(eos_id_);
  e.attention_mask.assign(e.ids.size(), 1);
  e.ids.resize(static_cast<size_t>(max_length), pad_id_);
  e.attention_mask.resize(static_cast<size_t>(max_length), 0);
  return e;
}

}  // namespace cf
