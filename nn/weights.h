// Loading a diffusers component folder (unet/, vae/, transformer/, ...) into
// a built graph's parameters.
//
// WeightFiles memory-maps the folder's safetensors: one
// diffusion_pytorch_model.safetensors (or model.safetensors), or the shards
// that a *.safetensors.index.json names ("weight_map": key -> file). The
// tensors are PyTorch's: LoadWeights converts them to each parameter's
// declared dtype (f32 / f16 / bf16 / f64, any to any) and layout
// (nn/layers.h):
//   declared rank 4 [O, kh, kw, I] (a KxK conv)   <- PyTorch [O, I, kh, kw], always permuted
//   declared rank 2 [O, I] (linear or 1x1 conv)   <- [O, I] or [O, I, 1, 1]
//   declared rank 3 [K, K, C] (a ConvBlock's depthwise weight) <- [K, K, C] or [C, 1, K, K]
//   anything else                                  <- the same shape
// Every problem is reported at once, by name and shape: parameters with no
// tensor (missing), tensors with no parameter (unexpected), tensors whose
// shape fits none of the layouts above, non-floating tensors.
//
//   CF_ASSIGN_OR_RETURN(WeightFiles w, WeightFiles::Open("sd15/unet"));
//   CF_ASSIGN_OR_RETURN(LoadedWeights lw, LoadWeights(graph, w));
//   for (auto& [name, t] : lw.parameters) CF_RETURN_IF_ERROR(exec->SetParameter(name, t));
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "nn/safetensors.h"

namespace cf {

// How a presented tensor is read from its source files (WeightFiles::WithAliases,
// used for single-file checkpoints, nn/ldm_checkpoint.h): the tensor `source`,
// then rows [row_begin, row_end) of its first dimension (row_end < 0: all),
// then `reshape` (same element count), then, for rank 2, `transpose`. Rows
// and reshapes stay zero-copy; a transpose is a copy.
struct WeightAlias {
  std::string source;
  int64_t row_begin = 0, row_end = -1;
  std::optional<Shape> reshape;
  bool transpose = false;
};

class WeightFiles {
 public:
  // `path`: a component folder, a .safetensors file or a .safetensors.index.json.
  // A folder is read through, in this order: diffusion_pytorch_model.safetensors.index.json,
  // diffusion_pytorch_model.safetensors, model.safetensors.index.json,
  // model.safetensors, else its only *.safetensors file. Errors name the path
  // and what was missing (a shard the index names, a key in two shards).
  static StatusOr<WeightFiles> Open(const std::string& path);
  // Several sources, later ones overriding earlier ones key by key (the
  // authors' ConvFusion weights on top of a base checkpoint).
  static StatusOr<WeightFiles> Open(const std::vector<std::string>& paths);

  const std::vector<std::string>& files() const { return paths_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  StatusOr<SafetensorsTensorInfo> Info(const std::string& name) const;
  // Zero-copy where the bytes allow (SafetensorsFile::View), else a copy.
  StatusOr<Tensor> Get(const std::string& name) const;
  // The file holding `name` ("" when absent).
  std::string FileOf(const std::string& name) const;

  // The same files presenting only the names in `aliases`, each read as its
  // WeightAlias says; a source tensor that is absent or a row range or
  // reshape that does not fit is an error naming both names. `source_of`
  // (optional) names the source key a name the files lack would have had,
  // for LoadWeights' report of missing parameters.
  StatusOr<WeightFiles> WithAliases(const std::map<std::string, WeightAlias>& aliases,
                                    std::function<std::string(const std::string&)> source_of = nullptr) const;
  // The key in the file that `name` is read from (`name` itself without
  // aliases; through `source_of` for an absent name; "" when unknown).
  std::string SourceKey(const std::string& name) const;

 private:
  Status Add(const std::string& file, bool override_keys);
  std::vector<std::string> paths_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // key -> index in files_
  std::map<std::string, WeightAlias> aliases_;  // presented name -> how (empty: names are the files' keys)
  std::function<std::string(const std::string&)> source_of_;
};

struct LoadWeightsOptions {
  std::string prefix;             // parameter name = prefix + key (e.g. "unet.")
  bool allow_missing = false;     // report parameters without a tensor instead of failing
  bool allow_unexpected = false;  // report tensors without a parameter instead of failing
};

struct LoadedWeights {
  std::vector<std::pair<std::string, Tensor>> parameters;  // graph parameter name -> value (declared shape, dtype)
  std::vector<std::string> missing;     // "name f32[320, 4, 3, 3]" (allowed ones)
  std::vector<std::string> unexpected;  // "key F16[320]" (allowed ones)
  int64_t bytes_read = 0;
  std::string Summary() const;  // "loaded 686 tensors (3.44 GB) from 1 file; 0 missing, 0 unexpected"
};

// Reads every parameter of `graph` (under options.prefix) from `files`.
StatusOr<LoadedWeights> LoadWeights(const Graph& graph, const WeightFiles& files,
                                    const LoadWeightsOptions& options = {});

}  // namespace cf
