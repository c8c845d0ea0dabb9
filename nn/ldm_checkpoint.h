// Single-file Stable Diffusion checkpoints (the original CompVis LDM and
// Stability SGM layouts: one .safetensors holding every component) presented
// per component under diffusers' names, so that LoadWeights (nn/weights.h)
// reads them as it reads a diffusers folder. Memory-mapped: a renamed tensor,
// a row range (OpenCLIP's packed q/k/v) and a reshape (the VAE's 1x1-conv
// attention) are views of the file; only OpenCLIP's text_projection (a
// transpose) is copied.
//
//   component        keys in the file                       presented as (diffusers)
//   unet             model.diffusion_model.*                unet/ (UNet2DConditionModel)
//   vae              first_stage_model.* (or vae.*)         vae/ (AutoencoderKL)
//   text_encoder     cond_stage_model.transformer.*  (SD1.5) text_encoder/ (CLIPTextModel, text_model.*)
//                    conditioner.embedders.0.transformer.* (SDXL)
//   text_encoder_2   conditioner.embedders.1.model.* (SDXL; 0 in the refiner), OpenCLIP's names
//                                                           text_encoder_2/ (CLIPTextModelWithProjection)
//
// The block layout (levels, resnets per level) is read from the keys
// (input_blocks.i.0.op marks a downsampler), so any UNet of the SD family
// maps, the tiny test models included. Keys under a component's prefix that
// map to nothing are presented under their own full names (LoadWeights then
// reports them unexpected); text_model.embeddings.position_ids and OpenCLIP's
// logit_scale (buffers no diffusers model loads) and everything outside the
// prefix (EMA copies model_ema.*, the schedule's alphas_cumprod, ...) are left
// out. A parameter the file lacks is reported with the LDM key it would have
// had (WeightFiles::SourceKey).
//
//   CF_ASSIGN_OR_RETURN(WeightFiles w, OpenComponentWeights("sd15.safetensors", "unet"));
//   CF_ASSIGN_OR_RETURN(LoadedWeights lw, LoadWeights(unet_graph, w));
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/safetensors.h"
#include "nn/weights.h"

namespace cf {

enum class LdmFamily { kSd15, kSd2, kSdxl, kSdxlRefiner };
const char* LdmFamilyName(LdmFamily f);  // "sd15", "sd2", "sdxl", "sdxl-refiner"

struct LdmCheckpointInfo {
  LdmFamily family = LdmFamily::kSd15;
  // The components present, in the order of the table above, each with the
  // prefix its keys have in the file.
  std::vector<std::pair<std::string, std::string>> components;
  bool has(const std::string& component) const;
};

// Whether `file`'s keys are a single-file checkpoint's (some key starts with
// one of the prefixes above).
bool IsLdmCheckpoint(const SafetensorsFile& file);
// The family and the components; an error naming the file when it is not a
// single-file checkpoint.
StatusOr<LdmCheckpointInfo> InspectLdmCheckpoint(const SafetensorsFile& file);

// The presented names of one component: diffusers name -> how it is read
// from `file` (and names the mapping cannot place, under their own names).
// `source_of` gives the LDM key a diffusers name would come from (for the
// report of missing parameters). Errors: the component is absent (naming the
// ones present), SD2's OpenCLIP text encoder (not implemented), a UNet whose
// block layout cannot be read from its keys.
struct LdmComponentMap {
  std::string prefix;  // the component's prefix in the file
  std::map<std::string, WeightAlias> aliases;
  std::function<std::string(const std::string&)> source_of;
};
StatusOr<LdmComponentMap> MapLdmComponent(const SafetensorsFile& file, const std::string& component);

// `component` of the single-file checkpoint at `path`, under diffusers' names.
StatusOr<WeightFiles> OpenLdmComponent(const std::string& path, const std::string& component);

// What `--model=PATH` accepts, for one component: a diffusers pipeline
// folder (its `component`/ subfolder), a component folder, a .safetensors
// or .safetensors.index.json of that component (WeightFiles::Open), or a
// single-file checkpoint (OpenLdmComponent). Pickle checkpoints (.ckpt, .pt,
// .bin) are refused with a hint.
StatusOr<WeightFiles> OpenComponentWeights(const std::string& path, const std::string& component);

}  // namespace cf
