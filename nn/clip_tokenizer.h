// The CLIP byte-level BPE tokenizer of Stable Diffusion's text encoders,
// matching two references id for id (docs/tokenizer.md):
//
//  - Hugging Face (transformers 5's CLIPTokenizer, the tokenizers library) from
//    a tokenizer folder: vocab.json, merges.txt and, when present,
//    tokenizer_config.json / special_tokens_map.json (bos, eos, pad, unk,
//    model_max_length, added_tokens_decoder). SD1.5's and SDXL's `tokenizer`
//    pad with <|endoftext|> (49407); SDXL's `tokenizer_2` pads with "!" (0),
//    which also makes every "!" of a prompt the special token 0.
//    Text: special tokens split out, NFC, whitespace runs to one space, each
//    character lowercased, the CLIP split, the GPT-2 split, bytes, BPE.
//  - Hugging Face, transformers 4's slow CLIPTokenizer on the same folders:
//    without ftfy installed (BERT's BasicTokenizer cleaning, nn/clip_text.h
//    BertBasicClean; kHuggingFaceBasic) or with it (kHuggingFaceFtfy).
//  - OpenCLIP's SimpleTokenizer from bpe_simple_vocab_16e6.txt.gz (SDXL's
//    OpenCLIP bigG encoder): its vocabulary (256 byte symbols, the same with
//    "</w>", the first 48894 merges, <start_of_text>, <end_of_text>), ftfy
//    (the subset in nn/clip_text.h) and html.unescape, str.lower, the CLIP split,
//    bytes, BPE; pads with 0.
//
//   CF_ASSIGN_OR_RETURN(ClipTokenizer tok, ClipTokenizer::Load("sdxl/tokenizer_2"));
//   CF_ASSIGN_OR_RETURN(ClipEncoding e, tok.Tokenize("a photo of a cat"));  // 77 ids and mask
//
// Tokenize gives [bos] + the text's ids + [eos], truncated to max_length with
// the end token kept last, padded to max_length; the attention mask is 1 on
// bos..eos. Encode is thread-safe (the per-word BPE cache is locked).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "runtime/status.h"

namespace cf {

enum class ClipTokenizerFlavor {
  kHuggingFace,       // transformers 5 CLIPTokenizer (= transformers 4 CLIPTokenizerFast)
  kHuggingFaceBasic,  // transformers 4 CLIPTokenizer, ftfy not installed
  kHuggingFaceFtfy,   // transformers 4 CLIPTokenizer, ftfy installed
  kOpenClip,
};
// "huggingface", "huggingface-basic", "huggingface-ftfy", "openclip".
const char* ClipTokenizerFlavorName(ClipTokenizerFlavor f);

struct ClipEncoding {
  std::vector<int64_t> ids;             // [max_length]
  std::vector<int64_t> attention_mask;  // [max_length], 1 on bos..eos, 0 on padding
};

class ClipTokenizer {
 public:
  // A folder: Hugging Face files, read as `folder_flavor` (one of the
  // kHuggingFace*); a file ending in ".gz": OpenCLIP's merges (then
  // folder_flavor must be kHuggingFace, the default).
  static StatusOr<ClipTokenizer> Load(const std::string& path,
                                      ClipTokenizerFlavor folder_flavor = ClipTokenizerFlavor::kHuggingFace);
  static StatusOr<ClipTokenizer> LoadHuggingFace(const std::string& folder,
                                                 ClipTokenizerFlavor flavor = ClipTokenizerFlavor::kHuggingFace);
  static StatusOr<ClipTokenizer> LoadOpenClip(const std::string& gz_path);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  ClipTokenizerFlavor flavor() const { return flavor_; }
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  // tokenizer_config.json's model_max_length; 77 when it has none (or for OpenCLIP).
  int64_t model_max_length() const { return model_max_length_; }
  // The id of a vocabulary entry (a byte-encoded symbol such as "hello</w>"), or -1.
  int64_t TokenId(const std::string& token) const;

  // The ids of `text` (UTF-8), without bos and eos, untruncated.
  StatusOr<std::vector<int64_t>> Encode(std::string_view text) const;
  // bos + Encode(text) + eos, truncated and padded to `max_length` (<= 0:
  // model_max_length()); max_length must be at least 2.
  StatusOr<ClipEncoding> Tokenize(std::string_view text, int64_t max_length = 0) const;

  // BPE of one pre-token given as byte symbols (nn/clip_text.h ByteSymbols):
  // the final symbols, the last one ending in "</w>".
  std::vector<std::string> Bpe(const std::vector<std::string>& symbols) const;

 private:
  // A special token of a Hugging Face folder: split out of the text before
  // (normalized = false) or after (true) normalisation.
  struct AddedToken {
    std::u32string content;
    int64_t id = 0;
    bool normalized = false;
  };

  ClipTokenizer() = default;
  StatusOr<std::vector<int64_t>> EncodeWord(const std::u32string& word) const;
  Status EncodeHuggingFace(const std::u32string& text, std::vector<int64_t>* ids) const;
  Status EncodeHuggingFaceSlow(const std::u32string& text, std::vector<int64_t>* ids) const;
  // The id of a SPECIAL match of the CLIP split, which skips BPE; -1 for other words.
  int64_t RegexSpecialId(const std::u32string& word) const;
  Status EncodeOpenClip(const std::u32string& text, std::vector<int64_t>* ids) const;

  ClipTokenizerFlavor flavor_ = ClipTokenizerFlavor::kHuggingFace;
  std::string source_;  // the path it was loaded from, for errors
  absl::flat_hash_map<std::string, int64_t> vocab_;
  absl::flat_hash_map<std::string, int32_t> ranks_;  // "first second" -> merge rank
  std::vector<AddedToken> added_;                    // Hugging Face: split before the pre-tokenizer
  std::vector<std::u32string> regex_specials_;       // the special alternatives of the CLIP split
  int64_t bos_id_ = 0, eos_id_ = 0, pad_id_ = 0, unk_id_ = -1;
  int64_t model_max_length_ = 77;

  mutable std::unique_ptr<std::mutex> cache_mu_ = std::make_unique<std::mutex>();
  mutable absl::flat_hash_map<std::string, std::vector<int64_t>> cache_;  // pre-token (UTF-8) -> ids
};

}  // namespace cf
