// A diffusers config.json (the file beside a component's weights: unet/,
// vae/, transformer/, text_encoder/) read into typed getters.
//
// Every model builder reads its architecture from one of these, so a tiny
// configuration of the same architecture (tests, the small model trained
// later) goes through the same code as the released one. The rules:
//  - a required key that is absent (or null) is an error naming the file and
//    the key;
//  - a key of the wrong type is an error naming the file, the key and the
//    value found;
//  - keys nobody read are collected by UnknownKeys() so the builder can print
//    a note ("ignored: foo, bar") instead of failing; keys starting with "_"
//    (_class_name, _diffusers_version, _name_or_path) are metadata and never
//    unknown.
//
//   CF_ASSIGN_OR_RETURN(DiffusersConfig c, DiffusersConfig::Load("sd15/unet"));
//   CF_ASSIGN_OR_RETURN(int64_t in, c.Int("in_channels"));              // required
//   CF_ASSIGN_OR_RETURN(double eps, c.Double("norm_eps", 1e-5));        // default
//   CF_ASSIGN_OR_RETURN(auto heads, c.IntList("attention_head_dim", 4)); // a scalar or 4 ints
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace cf {

class DiffusersConfig {
 public:
  // `path` is a config.json or a folder holding one.
  static StatusOr<DiffusersConfig> Load(const std::string& path);
  // `source` names the text in error messages (a path, or "<inline>").
  static StatusOr<DiffusersConfig> Parse(const std::string& json_text, const std::string& source = "<inline>");

  DiffusersConfig(const DiffusersConfig&);
  DiffusersConfig& operator=(const DiffusersConfig&);
  DiffusersConfig(DiffusersConfig&&) noexcept;
  DiffusersConfig& operator=(DiffusersConfig&&) noexcept;
  ~DiffusersConfig();

  const std::string& source() const { return source_; }
  // The value of "_class_name" ("" when absent).
  std::string class_name() const;

  // Present with a non-null value. Marks the key as read.
  bool Has(const std::string& key) const;
  // Present, null or not ("mid_block_type": null says "no mid block"). Marks the key as read.
  bool Contains(const std::string& key) const;

  // Required getters (absent or null: NotFound naming the file and the key).
  StatusOr<int64_t> Int(const std::string& key) const;
  StatusOr<double> Double(const std::string& key) const;
  StatusOr<bool> Bool(const std::string& key) const;
  StatusOr<std::string> String(const std::string& key) const;
  StatusOr<std::vector<std::string>> StringList(const std::string& key) const;

  // With a default for an absent or null key.
  StatusOr<int64_t> Int(const std::string& key, int64_t fallback) const;
  StatusOr<double> Double(const std::string& key, double fallback) const;
  StatusOr<bool> Bool(const std::string& key, bool fallback) const;
  StatusOr<std::string> String(const std::string& key, const std::string& fallback) const;
  // A string or null: nullopt for null or absent ("class_embed_type": null).
  StatusOr<std::optional<std::string>> OptionalString(const std::string& key) const;
  StatusOr<std::optional<int64_t>> OptionalInt(const std::string& key) const;

  // diffusers' "int or tuple" keys: a scalar is repeated n times, a list must
  // have n entries (n < 0: any length). Null entries read as 0.
  StatusOr<std::vector<int64_t>> IntList(const std::string& key, int n) const;
  // The same with a default scalar for an absent or null key.
  StatusOr<std::vector<int64_t>> IntListOr(const std::string& key, int n, int64_t fallback) const;
  // Bool or list of bools, repeated like IntList.
  StatusOr<std::vector<bool>> BoolList(const std::string& key, int n, bool fallback) const;

  // Marks keys as understood without reading them (options the runtime has
  // no use for, such as "sample_size" or "dropout").
  void Accept(const std::vector<std::string>& keys) const;
  // Keys in the file that no getter read and Accept did not name, in file
  // order, metadata ("_...") excluded.
  std::vector<std::string> UnknownKeys() const;
  // "" or "config <source>: ignored unknown keys a, b" for a builder's note.
  std::string UnknownKeysNote() const;

 private:
  struct Impl;
  DiffusersConfig() = default;
  std::string source_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cf
