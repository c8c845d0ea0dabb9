// convfusion-module: runs one module on tensors read from a safetensors file
// and writes its outputs to another, so that the runtime can be compared
// with a PyTorch implementation tensor by tensor (docs/module-runner.md).
//
//   convfusion-module attention --input=in.safetensors --output=out.safetensors
//       [--causal] [--scale=S] [--window=W] [--device=cpu|cuda] [--dtype=f32|f16|bf16]
//     q [B, Nq, heads, d], k and v [B, Nkv, heads, d], optional mask [B, Nkv]
//     (any dtype, nonzero: the key is visible) -> output [B, Nq, heads, d]
//   convfusion-module neighborhood --kernel=K|Kh,Kw [--dilation=D|Dh,Dw] [--scale=S] ...
//     q, k, v [B, H, W, heads, d] -> output [B, H, W, heads, d]
//   convfusion-module convblock --kernel=K [--gate=released|paper|sigmoid] [--scales=1,0.5] ...
//     input [B, H, W, C] and the weights under conv1.* -> output [B, H, W, C]
//   convfusion-module tokenize --tokenizer=FOLDER|bpe_simple_vocab_16e6.txt.gz --prompt=TEXT [--prompt=...]
//       [--max-length=77] [--hf-pipeline=fast|basic|ftfy] [--output=F.safetensors]: CLIP token ids (nn/clip_tokenizer.h), one line a prompt;
//     --output gets input_ids and attention_mask [B, T] (i64)
//   convfusion-module unet --model=PATH [--attention=CHOICE] [--extra-weights=PATH] ...
//     sample [B, C, H, W], timestep [] or [B], encoder_hidden_states [B, T, D] (+ text_embeds [B, Dt],
//     time_ids [B, 6] for SDXL) -> output [B, C, H, W]
//   convfusion-module transformer --model=PATH [--attention=CHOICE[,SCOPE=CHOICE...]] [--extra-weights=PATH] ...
//     hidden_states [B, C, H, W], timestep [] or [B], encoder_hidden_states [B, T, D] (+ encoder_attention_mask
//     [B, T], resolution [B, 2] and aspect_ratio [B, 1] for PixArt-alpha 1024) -> output [B, Cout, H, W]
//   convfusion-module vae-decode | vae-encode --model=PATH ...
//     latents [B, 4, h, w] -> output [B, 3, 8h, 8w]; image [B, 3, H, W] -> latent_mean, latent_logvar
//   convfusion-module text-encoder --model=PATH [--encoder=1|2] [--prompt=TEXT ... [--tokenizer=PATH]]
//       [--attention-mask] ...
//     input_ids [B, T] -> last_hidden_state, hidden_states_penultimate [B, T, D], pooled_output [B, D]
//     (+ text_embeds [B, P] for CLIPTextModelWithProjection)
//   PATH: a diffusers folder (unet/, vae/), one component folder, or a single-file SD1.5 / SDXL
//   checkpoint (.safetensors; --config=PATH, else its family's released config); what loaded is printed.
//
// Inputs are converted to --dtype (the output's dtype). Exit codes follow
// apps/common/cli.h: 2 for a bad command line, 1 for a failure at run time
// (a missing tensor, wrong shapes, no GPU for --device=cuda).
//
// A subcommand is one function in kSubcommands: it declares its flags on its
// own cli::App, checks them, reads and checks its tensors, and hands
// RunAndWrite a function that builds its module's named outputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "apps/common/cli.h"
#include "graph/builder.h"
#include "graph/executor.h"
#include "nn/convblock.h"
#include "nn/autoencoder_kl.h"
#include "nn/clip_text_model.h"
#include "nn/clip_tokenizer.h"
#include "nn/diffusers_config.h"
#include "nn/ldm_checkpoint.h"
#include "nn/pixart_transformer.h"
#include "nn/safetensors.h"
#include "nn/unet2d_condition.h"
#include "nn/weights.h"
#include "ops/attention/attention.h"
#include "ops/shape/shape.h"
#include "runtime/device.h"

namespace cf {
namespace {

constexpr const char* kProgram = "convfusion-module";

// ---- Shared by the subcommands ---------------------------------------------------

// The flags every subcommand has.
struct CommonFlags {
  std::string input, output;
  std::string device = "cpu";
  std::string dtype = "f32";
  std::string scale;  // empty: 1/sqrt(d)
};

void AddCommonFlags(cli::App& app, CommonFlags* c) {
  app.String("--input", &c->input, "FILE", "safetensors file with the module's inputs (required)");
  app.String("--output", &c->output, "FILE", "safetensors file to write the outputs to, atomically (required)");
  app.Enum("--device", &c->device, {"cpu", "cuda"}, "where to run (cuda: the first GPU)");
  app.Enum("--dtype", &c->dtype, {"f32", "f16", "bf16"}, "compute and output dtype; inputs are converted to it");
  app.String("--scale", &c->scale, "S", "attention score scale (default: 1/sqrt(d))");
}

// Checks what the parser cannot: required flags and --scale. Returns -1 to
// go on, else the exit code (a message was printed).
int CheckCommonFlags(const cli::App& app, const CommonFlags& c, std::optional<double>* scale) {
  if (c.input.empty()) return app.UsageError("--input: is required");
  if (c.output.empty()) return app.UsageError("--output: is required");
  if (!c.scale.empty()) {
    double v = 0;
    if (!absl::SimpleAtod(c.scale, &v) || !std::isfinite(v))
      return app.UsageError(absl::StrCat("--scale: '", c.scale, "' is not a finite number"));
    *scale = v;
  }
  return -1;
}

// "K" or "Kh,Kw", each in [lo, hi] (and odd when `odd`).
int ParseSize2Flag(const cli::App& app, const std::string& flag, const std::string& text, int64_t lo, int64_t hi,
                   bool odd, Size2* out) {
  const std::vector<std::string> parts = absl::StrSplit(text, ',');
  if (parts.size() > 2) return app.UsageError(absl::StrCat(flag, ": '", text, "' is not N or H,W"));
  int64_t v[2] = {0, 0};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!absl::SimpleAtoi(parts[i], &v[i]))
      return app.UsageError(absl::StrCat(flag, ": '", text, "' is not N or H,W (integers)"));
    if (v[i] < lo || v[i] > hi || (odd && v[i] % 2 == 0))
      return app.UsageError(absl::StrCat(flag, ": ", v[i], " is not ", odd ? "an odd integer" : "an integer", " in [",
                                          lo, ", ", hi, "]"));
  }
  *out = parts.size() == 1 ? Size2(v[0]) : Size2(v[0], v[1]);
  return -1;
}


DType ComputeDType(const CommonFlags& c) { return ParseDType(c.dtype).value(); }
Device DeviceOf(const CommonFlags& c) { return c.device == "cuda" ? Device::CUDA() : Device::CPU(); }

// A required input tensor; the error names it, what is expected, and what the file has.
StatusOr<Tensor> ReadInput(const SafetensorsFile& f, const std::string& name, const std::string& expected) {
  if (!f.contains(name)) {
    std::vector<std::string> have(f.names().begin(), f.names().begin() + std::min<size_t>(f.names().size(), 8));
    if (f.names().size() > 8) have.push_back("...");
    return absl::NotFoundError(absl::StrCat("input '", f.path(), "' has no tensor '", name, "' (", expected,
                                            "; the file has: ", have.empty() ? "no tensors" : absl::StrJoin(have, ", "),
                                            ")"));
  }
  return f.Read(name);
}

std::string Describe(const std::string& name, const Tensor& t) {
  return absl::StrCat("'", name, "' ", DTypeName(t.dtype()), t.shape().ToString());
}

// `t` (a floating tensor) converted to `dtype`, reshaped to `shape`.
StatusOr<Tensor> ToCompute(const std::string& name, const Tensor& t, DType dtype, const Shape& shape) {
  if (!IsFloating(t.dtype()))
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Describe(name, t), " is not floating (F64, F32, F16, BF16 or F8)"));
  Tensor out = t;
  if (t.dtype() != dtype) {
    CF_ASSIGN_OR_RETURN(out, Tensor::Empty(t.shape(), dtype));
    CF_RETURN_IF_ERROR(out.CopyFrom(t));
  }
  return out.Reshape(shape);
}

// Rank and agreement checks, with the tensors' names and shapes.
Status CheckRank(const std::string& name, const Tensor& t, int rank, const char* layout) {
  if (t.shape().rank() != rank)
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Describe(name, t), " has rank ", t.shape().rank(), "; expected ", layout));
  return absl::OkStatus();
}

// The module's named outputs, in the layout they are written in.
using Outputs = std::vector<std::pair<std::string, Value>>;
using BuildFn = std::function<Outputs(Builder&, const std::map<std::string, Value>&)>;

// Builds the module's graph on inputs named like `inputs`, runs it on the
// device and writes every output (with `metadata`, --device and --dtype) to
// --output.
Status RunAndWrite(const CommonFlags& c, const std::map<std::string, Tensor>& inputs, const BuildFn& build,
                   const std::map<std::string, std::string>& metadata) {
  Graph g;
  Builder b(&g);
  std::map<std::string, Value> values;
  for (const auto& [name, t] : inputs) values[name] = b.Input(name, t.shape(), t.dtype());
  const Outputs outs = build(b, values);
  for (const auto& [name, v] : outs) b.MarkOutput(v, name);
  CF_ASSIGN_OR_RETURN(Graph * graph, b.Finish());
  ExecutorOptions eo;
  eo.device = DeviceOf(c);
  CF_ASSIGN_OR_RETURN(auto exec, Executor::Create(*graph, eo));
  CF_ASSIGN_OR_RETURN(auto results, exec->RunNamed(inputs));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, v] : outs) tensors.push_back({name, results.at(name)});
  std::map<std::string, std::string> meta = metadata;
  meta["device"] = c.device;
  meta["dtype"] = c.dtype;
  return WriteSafetensors(c.output, tensors, meta);  // copies device tensors to the host
}

// ---- attention -------------------------------------------------------------------

constexpr const char* kAttentionInputs =
    "attention needs q [B, Nq, heads, d], k and v [B, Nkv, heads, d], and takes an optional mask [B, Nkv]";

Status RunAttention(const CommonFlags& c, const AttentionOptions& base) {
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(DeviceOf(c)));
  CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(c.input));
  CF_ASSIGN_OR_RETURN(Tensor q, ReadInput(f, "q", kAttentionInputs));
  CF_ASSIGN_OR_RETURN(Tensor k, ReadInput(f, "k", kAttentionInputs));
  CF_ASSIGN_OR_RETURN(Tensor v, ReadInput(f, "v", kAttentionInputs));
  CF_RETURN_IF_ERROR(CheckRank("q", q, 4, "[B, Nq, heads, d]"));
  CF_RETURN_IF_ERROR(CheckRank("k", k, 4, "[B, Nkv, heads, d]"));
  CF_RETURN_IF_ERROR(CheckRank("v", v, 4, "[B, Nkv, heads, d]"));
  const Shape& qs = q.shape();
  if (k.shape()[0] != qs[0] || k.shape()[2] != qs[2] || k.shape()[3] != qs[3])
    return absl::InvalidArgumentError(absl::StrCat("tensors ", Describe("q", q), " and ", Describe("k", k),
                                                   " differ in B, heads or d ([B, N, heads, d])"));
  if (v.shape() != k.shape())
    return absl::InvalidArgumentError(
        absl::StrCat("tensors ", Describe("k", k), " and ", Describe("v", v), " differ in shape"));
  const int64_t B = qs[0], nq = qs[1], heads = qs[2], d = qs[3], nkv = k.shape()[1];
  if (heads < 1 || d < 1)
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Describe("q", q), " has no heads or channels"));

  const DType dtype = ComputeDType(c);
  std::map<std::string, Tensor> inputs;
  CF_ASSIGN_OR_RETURN(inputs["q"], ToCompute("q", q, dtype, Shape{B, nq, heads * d}));
  CF_ASSIGN_OR_RETURN(inputs["k"], ToCompute("k", k, dtype, Shape{B, nkv, heads * d}));
  CF_ASSIGN_OR_RETURN(inputs["v"], ToCompute("v", v, dtype, Shape{B, nkv, heads * d}));
  if (f.contains("mask")) {
    CF_ASSIGN_OR_RETURN(Tensor m, f.Read("mask"));
    if (m.shape() != Shape{B, nkv})
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Describe("mask", m), " is not [B, Nkv] = [", B, ", ",
                                                     nkv, "] (from ", Describe("k", k), ")"));
    // Any dtype: nonzero (NaN included) is visible.
    CF_ASSIGN_OR_RETURN(std::vector<double> mv, m.ToVector<double>());
    CF_ASSIGN_OR_RETURN(Tensor u8, Tensor::Empty(m.shape(), DType::u8));
    for (size_t i = 0; i < mv.size(); ++i) u8.data<uint8_t>()[i] = mv[i] != 0 ? 1 : 0;
    inputs["mask"] = u8;
  }

  AttentionOptions options = base;
  options.heads = heads;
  const bool masked = inputs.count("mask") != 0;
  return RunAndWrite(
      c, inputs,
      [&](Builder&, const std::map<std::string, Value>& in) {
        AttentionOptions o = options;
        if (masked) o.key_mask = in.at("mask");
        return Outputs{{"output", Reshape(Attention(in.at("q"), in.at("k"), in.at("v"), o), {B, nq, heads, d})}};
      },
      {{"module", "attention"}});
}

int AttentionCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " attention"),
               "Scaled dot-product attention (self or cross) on q, k, v [B, N, heads, d] from --input; "
               "writes output [B, Nq, heads, d] to --output.");
  CommonFlags c;
  bool causal = false;
  int64_t window = -1;
  AddCommonFlags(app, &c);
  app.Flag("--causal", &causal, "key j is visible to query i only when j <= i");
  app.Int("--window", &window, -1, std::numeric_limits<int32_t>::max(),
          "band half-width: key j is visible only when |i - j| <= W (-1: no band)");
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  AttentionOptions options;
  if (const int code = CheckCommonFlags(app, c, &options.scale); code >= 0) return code;
  options.causal = causal;
  options.window = window;
  return app.RunBody([&] { return RunAttention(c, options); });
}

// ---- neighborhood ----------------------------------------------------------------

constexpr const char* kNeighborhoodInputs = "neighborhood needs q, k, v [B, H, W, heads, d]";

Status RunNeighborhood(const CommonFlags& c, const NeighborhoodAttentionOptions& base) {
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(DeviceOf(c)));
  CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(c.input));
  CF_ASSIGN_OR_RETURN(Tensor q, ReadInput(f, "q", kNeighborhoodInputs));
  CF_ASSIGN_OR_RETURN(Tensor k, ReadInput(f, "k", kNeighborhoodInputs));
  CF_ASSIGN_OR_RETURN(Tensor v, ReadInput(f, "v", kNeighborhoodInputs));
  for (const auto& [name, t] : {std::pair<const char*, const Tensor&>{"q", q}, {"k", k}, {"v", v}})
    CF_RETURN_IF_ERROR(CheckRank(name, t, 5, "[B, H, W, heads, d]"));
  for (const auto& [name, t] : {std::pair<const char*, const Tensor&>{"k", k}, {"v", v}})
    if (t.shape() != q.shape())
      return absl::InvalidArgumentError(
          absl::StrCat("tensors ", Describe("q", q), " and ", Describe(name, t), " differ in shape"));
  const Shape& s = q.shape();
  const int64_t B = s[0], H = s[1], W = s[2], heads = s[3], d = s[4];
  if (heads < 1 || d < 1)
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Describe("q", q), " has no heads or channels"));
  const DType dtype = ComputeDType(c);
  std::map<std::string, Tensor> inputs;
  for (const auto& [name, t] : {std::pair<const char*, const Tensor&>{"q", q}, {"k", k}, {"v", v}}) {
    CF_ASSIGN_OR_RETURN(inputs[name], ToCompute(name, t, dtype, Shape{B, H, W, heads * d}));
  }
  NeighborhoodAttentionOptions options = base;
  options.heads = heads;
  return RunAndWrite(
      c, inputs,
      [&](Builder&, const std::map<std::string, Value>& in) {
        const Value out = NeighborhoodAttention(in.at("q"), in.at("k"), in.at("v"), options);
        return Outputs{{"output", Reshape(out, {B, H, W, heads, d})}};
      },
      {{"module", "neighborhood"},
       {"kernel", absl::StrCat(options.kernel.h, ",", options.kernel.w)},
       {"dilation", absl::StrCat(options.dilation.h, ",", options.dilation.w)}});
}

int NeighborhoodCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " neighborhood"),
               "2D neighborhood attention (NATTEN's windows) on q, k, v [B, H, W, heads, d] from --input; "
               "writes output [B, H, W, heads, d] to --output.");
  CommonFlags c;
  std::string kernel, dilation = "1";
  AddCommonFlags(app, &c);
  app.String("--kernel", &kernel, "K|KH,KW", "window size per axis, odd, 3..31 (required)");
  app.String("--dilation", &dilation, "D|DH,DW", "dilation per axis, >= 1");
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  NeighborhoodAttentionOptions options;
  if (const int code = CheckCommonFlags(app, c, &options.scale); code >= 0) return code;
  if (kernel.empty()) return app.UsageError("--kernel: is required");
  if (const int code = ParseSize2Flag(app, "--kernel", kernel, 3, 31, true, &options.kernel); code >= 0) return code;
  if (const int code = ParseSize2Flag(app, "--dilation", dilation, 1, 1 << 20, false, &options.dilation); code >= 0)
    return code;
  return app.RunBody([&] { return RunNeighborhood(c, options); });
}

// ---- convblock -------------------------------------------------------------------

constexpr const char* kConvBlockInputs = "convblock needs input [B, H, W, C] and the weights under --prefix";

Status RunConvBlock(const CommonFlags& c, const ConvBlockOptions& options, const std::string& prefix, int repeat) {
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(DeviceOf(c)));
  CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(c.input));
  CF_ASSIGN_OR_RETURN(Tensor x, ReadInput(f, "input", kConvBlockInputs));
  CF_RETURN_IF_ERROR(CheckRank("input", x, 4, "[B, H, W, C]"));
  const DType dtype = ComputeDType(c);
  // Names, shapes and layouts of the weights are checked by the loader (errors name the key).
  CF_ASSIGN_OR_RETURN(auto params, LoadConvBlockParameters(f, prefix, x.shape()[3], options, dtype));
  std::map<std::string, Tensor> inputs;
  CF_ASSIGN_OR_RETURN(inputs["input"], ToCompute("input", x, dtype, x.shape()));
  std::vector<std::string> scales;
  for (double s : options.scales) scales.push_back(absl::StrCat(s));
  const BuildFn build = [&](Builder& b, const std::map<std::string, Value>& in) {
    Value y;
    {
      auto s = b.scope(prefix);
      y = ConvBlock(b, in.at("input"), options);
    }
    for (const auto& [name, t] : params) {
      const int id = b.graph().FindParameter(name);
      if (id >= 0) b.graph().mutable_value(id).data = t;
    }
    return Outputs{{"output", y}};
  };
  CF_RETURN_IF_ERROR(RunAndWrite(c, inputs, build,
                                 {{"module", "convblock"},
                                  {"kernel", absl::StrCat(options.kernel)},
                                  {"gate", ConvBlockGateName(options.gate)},
                                  {"scales", absl::StrJoin(scales, ",")}}));
  if (repeat == 0) return absl::OkStatus();
  // --repeat: the forward alone (graph built and planned once, a device's
  // outputs copied to the host), timed after one warm-up run; the median is printed.
  Graph g;
  Builder b(&g);
  const Outputs outs = build(b, {{"input", b.Input("input", inputs["input"].shape(), dtype)}});
  for (const auto& [name, v] : outs) b.MarkOutput(v, name);
  CF_ASSIGN_OR_RETURN(Graph * graph, b.Finish());
  ExecutorOptions eo;
  eo.device = DeviceOf(c);
  CF_ASSIGN_OR_RETURN(auto exec, Executor::Create(*graph, eo));
  CF_RETURN_IF_ERROR(exec->Run(inputs).status());
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    CF_ASSIGN_OR_RETURN(auto r, exec->Run(inputs));
    if (!eo.device.is_cpu()) CF_RETURN_IF_ERROR(r[0].To(Device::CPU()).status());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("convblock %s K=%lld gate=%s scales=%s dtype=%s device=%s: median %.3f ms, min %.3f ms over %d runs\n",
              x.shape().ToString().c_str(), static_cast<long long>(options.kernel), ConvBlockGateName(options.gate),
              absl::StrJoin(scales, ",").c_str(), c.dtype.c_str(), c.device.c_str(), ms[ms.size() / 2], ms[0],
              repeat);
  return absl::OkStatus();
}

int ConvBlockCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " convblock"),
               "The ConvBlock (nn/convblock.h) on input [B, H, W, C] from --input, with its weights read from the "
               "same file under the authors' keys (conv1.conv_up.weight, ...); writes output [B, H, W, C].");
  CommonFlags c;
  int64_t kernel = 0;
  std::string gate = "released", scales_text = "1,0.5", prefix = "conv1";
  double inter_ratio = 0.5;
  bool depthwise_bias = false;
  int repeat = 0;
  app.String("--input", &c.input, "FILE", "safetensors file with `input` and the weights (required)");
  app.String("--output", &c.output, "FILE", "safetensors file to write `output` to, atomically (required)");
  app.Enum("--device", &c.device, {"cpu", "cuda"}, "where to run (cuda: the first GPU)");
  app.Enum("--dtype", &c.dtype, {"f32", "f16", "bf16"}, "compute and output dtype; tensors are converted to it");
  app.Int("--kernel", &kernel, 3, 31, "depthwise kernel size K, odd, 3..31 (required)");
  app.Enum("--gate", &gate, {"released", "paper", "sigmoid"},
           "released: x1*x2*sqrt(C'/2); paper: x1*x2/sqrt(C'/2); sigmoid: x1*sigmoid(x2)");
  app.String("--scales", &scales_text, "S,S,...", "pyramid scales, each in (0, 1]");
  app.Double("--inter-ratio", &inter_ratio, cli::Interval::AboveUpTo(0.0, 16.0), "C' = int(C * ratio)");
  app.Flag("--depthwise-bias", &depthwise_bias, "the depthwise convs have a bias (gates.N.conv_spatial.bias)");
  app.String("--prefix", &prefix, "P", "the weights' key prefix");
  app.Int("--repeat", &repeat, 0, 100000, "after writing --output, time N more forward runs and print the median");
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  std::optional<double> unused_scale;
  if (const int code = CheckCommonFlags(app, c, &unused_scale); code >= 0) return code;
  if (kernel == 0) return app.UsageError("--kernel: is required");
  if (kernel % 2 == 0) return app.UsageError(absl::StrCat("--kernel: ", kernel, " is not an odd integer in [3, 31]"));
  ConvBlockOptions options{.kernel = kernel, .scales = {}, .inter_ratio = inter_ratio,
                           .gate = ParseConvBlockGate(gate).value(), .depthwise_bias = depthwise_bias};
  for (absl::string_view part : absl::StrSplit(scales_text, ',')) {
    double v = 0;
    if (!absl::SimpleAtod(part, &v) || !(v > 0.0 && v <= 1.0))
      return app.UsageError(absl::StrCat("--scales: '", part, "' is not a number in (0, 1]"));
    options.scales.push_back(v);
  }
  return app.RunBody([&] { return RunConvBlock(c, options, prefix, repeat); });
}

// ---- tokenize --------------------------------------------------------------------

// --prompt may be given many times, which cli::App's flags are not: its values
// are taken out of argv here (the App still declares it, for --help).
int TokenizeCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " tokenize"),
               "CLIP tokenizer (Hugging Face tokenizer folder or OpenCLIP's bpe_simple_vocab_16e6.txt.gz): prints "
               "each prompt's token ids, padded to --max-length, one line a prompt; --output writes input_ids and "
               "attention_mask [prompts, max-length] (i64).");
  std::string tokenizer, output, unused_prompt;
  int64_t max_length = 77;
  std::string pipeline = "fast";
  app.String("--tokenizer", &tokenizer, "PATH", "tokenizer folder (vocab.json, merges.txt, ...) or .gz (required)");
  app.String("--prompt", &unused_prompt, "TEXT", "a prompt (UTF-8); repeat for a batch (at least one)");
  app.Int("--max-length", &max_length, 2, 1 << 20, "ids per prompt, after truncation (the end token kept) and padding");
  app.String("--output", &output, "FILE", "safetensors file to write input_ids and attention_mask to, atomically");
  app.Enum("--hf-pipeline", &pipeline, {"fast", "basic", "ftfy"},
           "how a folder is read: transformers 5 (= 4's CLIPTokenizerFast), or 4's slow CLIPTokenizer without "
           "ftfy (BasicTokenizer) or with ftfy");
  std::vector<std::string> prompts;
  std::vector<char*> rest;
  if (const Status st = cli::TakeRepeated(argc, argv, "--prompt", &prompts, &rest); !st.ok())
    return app.UsageError(std::string(st.message()));
  if (const int code = app.Parse(static_cast<int>(rest.size()), rest.data()); code >= 0) return code;
  if (tokenizer.empty()) return app.UsageError("--tokenizer: is required");
  if (prompts.empty()) return app.UsageError("--prompt: is required (repeat it for a batch)");
  return app.RunBody([&]() -> Status {
    const ClipTokenizerFlavor flavor = pipeline == "basic"  ? ClipTokenizerFlavor::kHuggingFaceBasic
                                       : pipeline == "ftfy" ? ClipTokenizerFlavor::kHuggingFaceFtfy
                                                            : ClipTokenizerFlavor::kHuggingFace;
    CF_ASSIGN_OR_RETURN(ClipTokenizer tok, ClipTokenizer::Load(tokenizer, flavor));
    std::vector<int64_t> ids, mask;
    for (size_t i = 0; i < prompts.size(); ++i) {
      StatusOr<ClipEncoding> e = tok.Tokenize(prompts[i], max_length);
      if (!e.ok()) return Status(e.status().code(), absl::StrCat("--prompt #", i + 1, ": ", e.status().message()));
      ids.insert(ids.end(), e->ids.begin(), e->ids.end());
      mask.insert(mask.end(), e->attention_mask.begin(), e->attention_mask.end());
    }
    for (auto row = ids.begin(); row != ids.end(); row += max_length)
      std::printf("%s\n", absl::StrJoin(row, row + max_length, " ").c_str());
    if (output.empty()) return absl::OkStatus();
    const Shape shape{static_cast<int64_t>(prompts.size()), max_length};
    CF_ASSIGN_OR_RETURN(Tensor input_ids, Tensor::FromValues<int64_t>(ids, shape));
    CF_ASSIGN_OR_RETURN(Tensor attention_mask, Tensor::FromValues<int64_t>(mask, shape));
    return WriteSafetensors(output, {{"input_ids", input_ids}, {"attention_mask", attention_mask}},
                            {{"module", "tokenize"},
                             {"tokenizer", tokenizer},
                             {"flavor", ClipTokenizerFlavorName(tok.flavor())},
                             {"max_length", absl::StrCat(max_length)}});
  });
}

// ---- unet, vae-decode, vae-encode: diffusers models from a folder --------------------

// --model=PATH resolved to one component folder: PATH/<component> when it
// has a config.json (a whole diffusers folder), else PATH itself. A
// config naming another class is refused (a unet/ folder given to vae-decode).
StatusOr<std::string> ComponentFolder(const std::string& path, const std::string& component,
                                      const std::string& class_name, const std::string& also_class = "") {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec))
    return absl::NotFoundError(absl::StrCat("--model=", path, ": not a folder (a diffusers folder with ", component,
                                            "/, or the ", component,
                                            "/ folder itself, or a single-file checkpoint)"));
  std::string folder = path;
  if (fs::exists(fs::path(path) / component / "config.json", ec)) {
    folder = (fs::path(path) / component).string();
  } else if (!fs::exists(fs::path(path) / "config.json", ec)) {
    return absl::NotFoundError(absl::StrCat("--model=", path, ": has neither ", component,
                                            "/config.json nor config.json"));
  }
  CF_ASSIGN_OR_RETURN(DiffusersConfig c, DiffusersConfig::Load(folder));
  if (!c.class_name().empty() && c.class_name() != class_name && (also_class.empty() || c.class_name() != also_class))
    return absl::InvalidArgumentError(absl::StrCat("--model: ", c.source(), " is a ", c.class_name(), ", not a ",
                                                   class_name, " (", component, "/)"));
  return folder;
}

// What a model subcommand loaded, printed before it runs.
struct ModelReport {
  std::string component, folder, note;
  int64_t parameters = 0;
  std::string weights;      // LoadedWeights::Summary()
  std::string unexpected;   // the first few, when allowed
  std::string extra;        // per-model lines
};

void PrintReport(const ModelReport& r, const CommonFlags& c) {
  std::printf("%s: %s, dtype %s, device %s, %lld parameters\n", r.component.c_str(), r.folder.c_str(),
              c.dtype.c_str(), c.device.c_str(), static_cast<long long>(r.parameters));
  if (!r.note.empty()) std::printf("  %s\n", r.note.c_str());
  if (!r.extra.empty()) std::printf("%s", r.extra.c_str());
  std::printf("  weights: %s\n", r.weights.c_str());
  if (!r.unexpected.empty()) std::printf("  the unexpected tensors are %s\n", r.unexpected.c_str());
}

// Loads every parameter the builder declared from `files` and fills the
// report. Tensors no parameter takes are refused unless `expected_unused`
// says they belong there (`why` says how, in the report). Errors, with every
// missing, unexpected and mis-shaped key, go to the builder.
void AttachWeights(Builder& b, const WeightFiles& files, const std::function<bool(const std::string&)>& expected_unused,
                   const std::string& why, ModelReport* r) {
  if (!b.ok()) return;
  LoadWeightsOptions lo;
  lo.allow_unexpected = true;
  StatusOr<LoadedWeights> w = LoadWeights(b.graph(), files, lo);
  if (!w.ok()) return b.Fail(w.status());
  std::vector<std::string> refused;
  for (const std::string& k : w->unexpected)  // "key DTYPE[shape]"
    if (!expected_unused || !expected_unused(k.substr(0, k.find(' ')))) refused.push_back(k);
  if (!refused.empty()) {
    const size_t n = std::min<size_t>(refused.size(), 50);
    return b.Fail(absl::InvalidArgumentError(absl::StrCat(
        "weights from ", absl::StrJoin(files.files(), ", "), ": ", refused.size(),
        " unexpected (tensors no parameter takes):\n  ", absl::StrJoin(refused.begin(), refused.begin() + n, "\n  "),
        n < refused.size() ? absl::StrCat("\n  ... and ", refused.size() - n, " more") : "")));
  }
  for (auto& [name, t] : w->parameters) b.graph().mutable_value(b.graph().FindParameter(name)).data = t;
  for (int id : b.graph().Parameters()) r->parameters += b.graph().value(id).type.shape.numel();
  const std::vector<std::string>& from = files.files();
  r->weights = absl::StrCat(w->Summary(), " from ",
                            from.size() <= 2 ? absl::StrJoin(from, ", ")
                                             : absl::StrCat(from.size(), " files (", from.front(), ", ...)"));
  if (!w->unexpected.empty()) r->unexpected = why;
}

// Any numeric tensor (integer timesteps, time ids) as f32.
StatusOr<Tensor> ToF32(const std::string& name, const Tensor& t, const Shape& shape) {
  if (IsFloating(t.dtype())) return ToCompute(name, t, DType::f32, shape);
  CF_ASSIGN_OR_RETURN(std::vector<double> v, t.ToVector<double>());
  return Tensor::FromValues<double>(v, shape, DType::f32);
}

// A model tensor, checked for rank, converted to `dtype`.
Status ModelInput(const SafetensorsFile& f, const std::string& name, int rank, const char* layout,
                  const std::string& expected, DType dtype, std::map<std::string, Tensor>* inputs) {
  CF_ASSIGN_OR_RETURN(Tensor t, ReadInput(f, name, expected));
  CF_RETURN_IF_ERROR(CheckRank(name, t, rank, layout));
  CF_ASSIGN_OR_RETURN((*inputs)[name], ToCompute(name, t, dtype, t.shape()));
  return absl::OkStatus();
}

struct ModelFlags {
  CommonFlags common;
  std::string model, attention = "self", extra_weights, config;
};

// --model=FILE: a single-file SD1.5 / SDXL checkpoint (nn/ldm_checkpoint.h),
// its `component` under diffusers' names; nullopt when PATH is not a file.
struct SingleFile {
  WeightFiles files;
  LdmFamily family;
};
StatusOr<std::optional<SingleFile>> OpenSingleFile(const std::string& path, const std::string& component) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::optional<SingleFile>();  // ComponentFolder says why
  CF_ASSIGN_OR_RETURN(WeightFiles files, OpenLdmComponent(path, component));
  CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
  CF_ASSIGN_OR_RETURN(LdmCheckpointInfo info, InspectLdmCheckpoint(f));
  return std::optional<SingleFile>(SingleFile{std::move(files), info.family});
}

// The config a single file has none of: --config, else its family's released one.
template <typename Config>
StatusOr<Config> SingleFileConfig(const ModelFlags& m, LdmFamily family, Config (*sd15)(), Config (*sdxl)(),
                                  bool refiner_like_sdxl) {
  if (!m.config.empty()) return Config::Load(m.config);
  if (family == LdmFamily::kSd15) return sd15();
  if (family == LdmFamily::kSdxl || (refiner_like_sdxl && family == LdmFamily::kSdxlRefiner)) return sdxl();
  return absl::InvalidArgumentError(absl::StrCat("--model=", m.model, " is a ", LdmFamilyName(family),
                                                 " checkpoint, which has no built-in config: give --config=PATH"));
}

void AddModelFlags(cli::App& app, ModelFlags* m, const char* component) {
  app.String("--model", &m->model, "PATH",
             absl::StrCat("a diffusers folder (with ", component, "/), the ", component,
                          "/ folder, or a single-file SD1.5 / SDXL checkpoint (.safetensors) (required)"));
  app.String("--config", &m->config, "PATH",
             "the config.json (or its folder) to build with; default: the folder's, or for a single file its "
             "family's released config");
  app.String("--input", &m->common.input, "FILE", "safetensors file with the model's inputs (required)");
  app.String("--output", &m->common.output, "FILE", "safetensors file to write the outputs to, atomically (required)");
  app.Enum("--device", &m->common.device, {"cpu", "cuda"}, "where to run (cuda: the first GPU)");
  app.Enum("--dtype", &m->common.dtype, {"f32", "f16", "bf16"},
           "compute, parameter and output dtype; inputs and weights are converted to it");
}

int CheckModelFlags(const cli::App& app, const ModelFlags& m) {
  if (m.model.empty()) return app.UsageError("--model: is required");
  std::optional<double> unused;
  return CheckCommonFlags(app, m.common, &unused);
}

constexpr const char* kUNetInputs =
    "unet needs sample [B, C, H, W], timestep [] or [B], encoder_hidden_states [B, T, D], and for SDXL "
    "text_embeds [B, Dt] and time_ids [B, 6]";

// --attention's per-layer overrides: the blocks' scopes go through `choices`;
// an override that matched no block is an error that lists a few scopes.
struct LayerChoices {
  SelfAttentionChoices choices;
  std::vector<int> matched;
  std::vector<std::string> scopes;

  explicit LayerChoices(SelfAttentionChoices c) : choices(std::move(c)), matched(choices.overrides.size(), 0) {}
  std::optional<SelfAttentionChoice> For(const std::string& scope) {
    scopes.push_back(scope);
    return choices.For(scope, &matched);
  }
  // Whether any block may be other than self-attention (attn1's tensors then go unused).
  bool AnyReplaced() const {
    bool any = choices.all.kind != SelfAttentionKind::kSelfAttention;
    for (const auto& [scope, c] : choices.overrides) any |= c.kind != SelfAttentionKind::kSelfAttention;
    return any;
  }
  Status CheckAllMatched() const {
    for (size_t i = 0; i < matched.size(); ++i) {
      if (matched[i] > 0) continue;
      std::vector<std::string> some(scopes.begin(), scopes.begin() + std::min<size_t>(scopes.size(), 3));
      if (scopes.size() > 3) some.push_back(scopes.back());
      return absl::InvalidArgumentError(absl::StrCat(
          "--attention: '", choices.overrides[i].first, "=", choices.overrides[i].second.ToString(),
          "' matches no transformer block (their scopes: ", some.empty() ? "none" : absl::StrJoin(some, ", "),
          scopes.size() > 3 ? absl::StrCat("; ", scopes.size(), " in all") : "", ")"));
    }
    return absl::OkStatus();
  }
};

// With attn1 replaced (or weights layered on top), the base's attn1 tensors
// have no parameter, and with ConvBlocks in some blocks only, the conv1
// tensors of the others have none: reported, not refused.
bool UnusedMixerTensor(const std::string& key, bool replaced) {
  if (replaced && key.find(".attn1.") != std::string::npos) return true;
  return key.find("transformer_blocks.") != std::string::npos && key.find(".conv1.") != std::string::npos;
}
constexpr const char* kUnusedMixerTensors =
    "attn1's (or conv1's) in blocks where the --attention choice replaced them (not loaded)";

Status RunUNet(const ModelFlags& m, const SelfAttentionChoices& choices) {
  const CommonFlags& c = m.common;
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(DeviceOf(c)));
  CF_ASSIGN_OR_RETURN(std::optional<SingleFile> single, OpenSingleFile(m.model, "unet"));
  std::string folder = m.model;
  if (!single) {
    CF_ASSIGN_OR_RETURN(folder, ComponentFolder(m.model, "unet", "UNet2DConditionModel"));
  }
  if (single && !m.extra_weights.empty())
    return absl::UnimplementedError("--extra-weights on a single-file --model is not supported");
  // The authors' ConvFusion folders carry a config.json with their conv1
  // kernel keys beside the conv1 tensors: an --extra-weights folder with a
  // config gives the architecture, the base its other weights.
  std::error_code ec;
  const bool extra_config = !m.extra_weights.empty() &&
                            std::filesystem::exists(std::filesystem::path(m.extra_weights) / "config.json", ec);
  const std::string config_folder = extra_config ? m.extra_weights : !m.config.empty() ? m.config : folder;
  UNet2DConditionConfig config;
  if (single) {
    CF_ASSIGN_OR_RETURN(config, SingleFileConfig(m, single->family, &UNet2DConditionConfig::StableDiffusion15,
                                                 &UNet2DConditionConfig::StableDiffusionXL, false));
  } else {
    CF_ASSIGN_OR_RETURN(config, UNet2DConditionConfig::Load(config_folder));
  }
  std::vector<std::string> sources = {folder};
  if (!m.extra_weights.empty()) sources.push_back(m.extra_weights);
  WeightFiles files;
  if (single) {
    files = std::move(single->files);
  } else {
    CF_ASSIGN_OR_RETURN(files, WeightFiles::Open(sources));
  }
  CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(c.input));
  const DType dtype = ComputeDType(c);
  std::map<std::string, Tensor> inputs;
  CF_RETURN_IF_ERROR(ModelInput(f, "sample", 4, "[B, C, H, W]", kUNetInputs, dtype, &inputs));
  CF_RETURN_IF_ERROR(ModelInput(f, "encoder_hidden_states", 3, "[B, T, D]", kUNetInputs, dtype, &inputs));
  const int64_t B = inputs["sample"].shape()[0];
  CF_ASSIGN_OR_RETURN(Tensor t, ReadInput(f, "timestep", kUNetInputs));
  if (t.shape().rank() > 1 || (t.shape().rank() == 1 && t.shape()[0] != B && t.shape()[0] != 1))
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Describe("timestep", t), " is neither a scalar nor [B] = [", B, "]"));
  // Timesteps (and SDXL's time ids) stay f32 whatever --dtype: the sinusoidal
  // embedding is computed in f32 as diffusers does.
  CF_ASSIGN_OR_RETURN(inputs["timestep"], ToF32("timestep", t, t.numel() == 1 ? Shape{} : Shape{B}));
  if (config.text_time) {
    CF_RETURN_IF_ERROR(ModelInput(f, "text_embeds", 2, "[B, Dt]", kUNetInputs, dtype, &inputs));
    CF_ASSIGN_OR_RETURN(Tensor ids, ReadInput(f, "time_ids", kUNetInputs));
    CF_RETURN_IF_ERROR(CheckRank("time_ids", ids, 2, "[B, n]"));
    CF_ASSIGN_OR_RETURN(inputs["time_ids"], ToF32("time_ids", ids, ids.shape()));
  }
  ModelReport r;
  r.component = "unet";
  r.folder = folder;
  r.note = config.note;
  UNetBuildOptions o;
  LayerChoices layers(choices);
  o.self_attention = choices.all;
  o.per_layer = [&](const UNetAttentionSite& site) { return layers.For(site.scope); };
  const bool replaced = layers.AnyReplaced() || !m.extra_weights.empty();
  const BuildFn build = [&](Builder& b, const std::map<std::string, Value>& in) {
    UNetInputs ui{.sample = in.at("sample"), .timestep = in.at("timestep"),
                  .encoder_hidden_states = in.at("encoder_hidden_states")};
    if (config.text_time) ui.text_embeds = in.at("text_embeds"), ui.time_ids = in.at("time_ids");
    UNetOutputs u = UNet2DCondition(b, config, ui, o);
    if (b.ok())
      if (Status s = layers.CheckAllMatched(); !s.ok()) b.Fail(s);
    std::map<std::string, int> kinds;
    for (const UNetAttentionSite& site : u.sites) ++kinds[site.choice.ToString()];
    std::vector<std::string> k;
    for (const auto& [name, n] : kinds) k.push_back(absl::StrCat(name, " x", n));
    r.extra = absl::StrCat(extra_config ? absl::StrCat("  config from ", config_folder, "\n") : "",
                           "  config: block_out_channels [", absl::StrJoin(config.block_out_channels, ", "),
                           "], in/out channels ", config.in_channels, "/", config.out_channels,
                           ", cross_attention_dim ", config.cross_attention_dim[0],
                           config.text_time ? ", text-time embeddings (SDXL)" : "", "\n  ", u.sites.size(),
                           " transformer blocks, self-attention: ", k.empty() ? "none" : absl::StrJoin(k, ", "),
                           "\n");
    AttachWeights(b, files, [&](const std::string& key) { return UnusedMixerTensor(key, replaced); },
                  kUnusedMixerTensors, &r);
    if (b.ok()) PrintReport(r, c);
    return Outputs{{"output", u.sample}};
  };
  return RunAndWrite(c, inputs, build, {{"module", "unet"}, {"model", folder}, {"attention", choices.ToString()}});
}

int UNetCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " unet"),
               "diffusers' UNet2DConditionModel (SD1.5, SDXL) from --model on sample, timestep, "
               "encoder_hidden_states (+ text_embeds, time_ids) from --input; writes output [B, C, H, W].");
  ModelFlags m;
  AddModelFlags(app, &m, "unet");
  app.String("--attention", &m.attention, "CHOICE[,SCOPE=CHOICE...]",
             "every transformer block's self-attention: self, na:K[:dilation], convblock[:K[:gate]], linfusion, "
             "window:W[:mode] (the config's conv1 keys still choose ConvBlocks where present); SCOPE=CHOICE "
             "overrides it for the blocks under SCOPE (e.g. down_blocks.0=na:13), the last match winning");
  app.String("--extra-weights", &m.extra_weights, "PATH",
             "safetensors file or folder read on top of the model's (the authors' ConvFusion conv1 weights); "
             "a folder with a config.json also gives the config (their conv1 kernel keys)");
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  if (const int code = CheckModelFlags(app, m); code >= 0) return code;
  StatusOr<SelfAttentionChoices> choices = ParseSelfAttentionChoices(m.attention);
  if (!choices.ok()) return app.UsageError(absl::StrCat("--attention: ", choices.status().message()));
  return app.RunBody([&] { return RunUNet(m, *choices); });
}

Status RunVae(const ModelFlags& m, bool encode) {
  const CommonFlags& c = m.common;
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(DeviceOf(c)));
  CF_ASSIGN_OR_RETURN(std::optional<SingleFile> single, OpenSingleFile(m.model, "vae"));
  std::string folder = m.model;
  if (!single) {
    CF_ASSIGN_OR_RETURN(folder, ComponentFolder(m.model, "vae", "AutoencoderKL"));
  }
  AutoencoderKLConfig config;
  WeightFiles opened;
  if (single) {
    CF_ASSIGN_OR_RETURN(config, SingleFileConfig(m, single->family, &AutoencoderKLConfig::StableDiffusion15,
                                                 &AutoencoderKLConfig::StableDiffusionXL, true));
    opened = std::move(single->files);
  } else {
    CF_ASSIGN_OR_RETURN(config, AutoencoderKLConfig::Load(m.config.empty() ? folder : m.config));
    CF_ASSIGN_OR_RETURN(opened, WeightFiles::Open(folder));
  }
  int renamed = 0;
  CF_ASSIGN_OR_RETURN(WeightFiles files, WithCurrentVaeAttentionNames(opened, &renamed));
  CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(c.input));
  const std::string in_name = encode ? "image" : "latents";
  std::map<std::string, Tensor> inputs;
  CF_RETURN_IF_ERROR(ModelInput(f, in_name, 4, encode ? "[B, C, H, W]" : "[B, latent, h, w]",
                                encode ? "vae-encode needs image [B, C, H, W]" : "vae-decode needs latents [B, 4, h, w]",
                                ComputeDType(c), &inputs));
  ModelReport r;
  r.component = encode ? "vae (encoder)" : "vae (decoder)";
  r.folder = folder;
  r.note = config.note;
  r.extra = absl::StrCat("  config: block_out_channels [", absl::StrJoin(config.block_out_channels, ", "),
                         "], layers_per_block ", config.layers_per_block, ", latent_channels ",
                         config.latent_channels, ", mid-block attention ",
                         config.mid_block_add_attention ? "yes" : "no", "\n");
  absl::StrAppend(&r.extra, absl::StrFormat("  scaling_factor %g (not applied: %s)\n", config.scaling_factor,
                                            encode ? "multiply latent_mean by it"
                                                   : "latents are divided by it before decoding"));
  if (renamed > 0)
    absl::StrAppend(&r.extra, "  ", renamed,
                    " tensors under the old attention names (query, key, value, proj_attn) read as to_q, to_k, "
                    "to_v, to_out.0\n");
  const BuildFn build = [&](Builder& b, const std::map<std::string, Value>& in) {
    Outputs outs;
    if (encode) {
      VaeEncodeOutputs e = AutoencoderKLEncode(b, config, in.at("image"));
      outs = {{"latent_mean", e.latent_mean}, {"latent_logvar", e.latent_logvar}};
    } else {
      outs = {{"output", AutoencoderKLDecode(b, config, in.at("latents")).image}};
    }
    // The other half's tensors (decoder.* for an encoder run) are in the
    // same file: unexpected by design; any other is refused.
    const std::vector<std::string> other =
        encode ? std::vector<std::string>{"decoder.", "post_quant_conv."}
               : std::vector<std::string>{"encoder.", "quant_conv."};
    AttachWeights(
        b, files,
        [&](const std::string& key) {
          return std::any_of(other.begin(), other.end(), [&](const std::string& o) { return key.rfind(o, 0) == 0; });
        },
        absl::StrCat(other[0], "* and ", other[1], "* (the other half of the model, not loaded)"), &r);
    if (b.ok()) PrintReport(r, c);
    return outs;
  };
  return RunAndWrite(c, inputs, build, {{"module", encode ? "vae-encode" : "vae-decode"}, {"model", folder}});
}

int VaeCommand(int argc, char** argv, bool encode) {
  cli::App app(absl::StrCat(kProgram, encode ? " vae-encode" : " vae-decode"),
               encode ? "diffusers' AutoencoderKL encoder from --model on image [B, C, H, W] from --input; writes "
                        "latent_mean and latent_logvar [B, latent, H/8, W/8] (logvar clamped to [-30, 20]; no "
                        "scaling factor applied)."
                      : "diffusers' AutoencoderKL decoder from --model on latents [B, latent, h, w] from --input "
                        "(already divided by the scaling factor); writes output [B, C, 8h, 8w].");
  ModelFlags m;
  AddModelFlags(app, &m, "vae");
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  if (const int code = CheckModelFlags(app, m); code >= 0) return code;
  return app.RunBody([&] { return RunVae(m, encode); });
}

int VaeDecodeCommand(int argc, char** argv) { return VaeCommand(argc, argv, /*encode=*/false); }
int VaeEncodeCommand(int argc, char** argv) { return VaeCommand(argc, argv, /*encode=*/true); }

// ---- transformer: diffusers' PixArtTransformer2DModel ---------------------------------

constexpr const char* kTransformerInputs =
    "transformer needs hidden_states [B, C, H, W], timestep [] or [B], encoder_hidden_states [B, T, D], takes an "
    "optional encoder_attention_mask [B, T], and with use_additional_conditions resolution [B, 2] and "
    "aspect_ratio [B, 1]";

// The block's self-attention kinds, counted: "convblock:13:sigmoid x2, self x26".
template <typename Site>
std::string KindsOf(const std::vector<Site>& sites) {
  std::map<std::string, int> kinds;
  for (const Site& site : sites) ++kinds[site.choice.ToString()];
  std::vector<std::string> k;
  for (const auto& [name, n] : kinds) k.push_back(absl::StrCat(name, " x", n));
  return k.empty() ? "none" : absl::StrJoin(k, ", ");
}

Status RunTransformer(const ModelFlags& m, const SelfAttentionChoices& choices) {
  const CommonFlags& c = m.common;
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(DeviceOf(c)));
  // The released files say Transformer2DModel (norm_type ada_norm_single).
  CF_ASSIGN_OR_RETURN(std::string folder,
                      ComponentFolder(m.model, "transformer", "PixArtTransformer2DModel", "Transformer2DModel"));
  std::error_code ec;
  const bool extra_config = !m.extra_weights.empty() &&
                            std::filesystem::exists(std::filesystem::path(m.extra_weights) / "config.json", ec);
  const std::string config_folder = extra_config ? m.extra_weights : !m.config.empty() ? m.config : folder;
  CF_ASSIGN_OR_RETURN(PixArtTransformerConfig config, PixArtTransformerConfig::Load(config_folder));
  std::vector<std::string> sources = {folder};
  if (!m.extra_weights.empty()) sources.push_back(m.extra_weights);
  CF_ASSIGN_OR_RETURN(WeightFiles files, WeightFiles::Open(sources));

  CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(c.input));
  const DType dtype = ComputeDType(c);
  std::map<std::string, Tensor> inputs;
  CF_RETURN_IF_ERROR(ModelInput(f, "hidden_states", 4, "[B, C, H, W]", kTransformerInputs, dtype, &inputs));
  CF_RETURN_IF_ERROR(ModelInput(f, "encoder_hidden_states", 3, "[B, T, D]", kTransformerInputs, dtype, &inputs));
  const int64_t B = inputs["hidden_states"].shape()[0];
  CF_ASSIGN_OR_RETURN(Tensor t, ReadInput(f, "timestep", kTransformerInputs));
  if (t.shape().rank() > 1 || (t.shape().rank() == 1 && t.shape()[0] != B && t.shape()[0] != 1))
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Describe("timestep", t), " is neither a scalar nor [B] = [", B, "]"));
  // Timesteps and micro-conditions stay f32 whatever --dtype (diffusers embeds them in f32).
  CF_ASSIGN_OR_RETURN(inputs["timestep"], ToF32("timestep", t, t.numel() == 1 ? Shape{} : Shape{B}));
  if (f.contains("encoder_attention_mask")) {  // any dtype: nonzero keeps the token
    CF_ASSIGN_OR_RETURN(Tensor mask, f.Read("encoder_attention_mask"));
    CF_RETURN_IF_ERROR(CheckRank("encoder_attention_mask", mask, 2, "[B, T]"));
    CF_ASSIGN_OR_RETURN(std::vector<double> mv, mask.ToVector<double>());
    CF_ASSIGN_OR_RETURN(Tensor u8, Tensor::Empty(mask.shape(), DType::u8));
    for (size_t i = 0; i < mv.size(); ++i) u8.data<uint8_t>()[i] = mv[i] != 0 ? 1 : 0;
    inputs["encoder_attention_mask"] = u8;
  }
  if (config.use_additional_conditions) {
    for (const auto& [name, layout] : {std::pair<const char*, const char*>{"resolution", "[B, 2]"},
                                       {"aspect_ratio", "[B, 1]"}}) {
      CF_ASSIGN_OR_RETURN(Tensor a, ReadInput(f, name, kTransformerInputs));
      CF_RETURN_IF_ERROR(CheckRank(name, a, 2, layout));
      CF_ASSIGN_OR_RETURN(inputs[name], ToF32(name, a, a.shape()));
    }
  }

  ModelReport r;
  r.component = "transformer";
  r.folder = folder;
  r.note = config.note;
  PixArtBuildOptions o;
  LayerChoices layers(choices);
  o.self_attention = choices.all;
  o.per_layer = [&](const PixArtAttentionSite& site) { return layers.For(site.scope); };
  const bool replaced = layers.AnyReplaced() || !m.extra_weights.empty();
  const BuildFn build = [&](Builder& b, const std::map<std::string, Value>& in) {
    PixArtInputs pi{.hidden_states = in.at("hidden_states"), .timestep = in.at("timestep"),
                    .encoder_hidden_states = in.at("encoder_hidden_states")};
    if (in.count("encoder_attention_mask")) pi.encoder_attention_mask = in.at("encoder_attention_mask");
    if (config.use_additional_conditions) pi.resolution = in.at("resolution"), pi.aspect_ratio = in.at("aspect_ratio");
    PixArtOutputs p = PixArtTransformer2D(b, config, pi, o);
    if (b.ok())
      if (Status s = layers.CheckAllMatched(); !s.ok()) b.Fail(s);
    r.extra = absl::StrCat(extra_config ? absl::StrCat("  config from ", config_folder, "\n") : "",
                           "  config: ", config.heads, " heads x ", config.head_dim, ", ", config.num_layers,
                           " layers, patch ", config.patch_size, ", sample_size ", config.sample_size,
                           ", in/out channels ", config.in_channels, "/", config.out_channels, ", caption_channels ",
                           config.caption_channels,
                           config.use_additional_conditions ? ", resolution and aspect-ratio conditions" : "",
                           "\n  caption mask: ", pi.encoder_attention_mask ? "yes" : "no (every token kept)",
                           "\n  ", p.sites.size(), " transformer blocks, self-attention: ", KindsOf(p.sites), "\n");
    AttachWeights(b, files, [&](const std::string& key) { return UnusedMixerTensor(key, replaced); },
                  kUnusedMixerTensors, &r);
    if (b.ok()) PrintReport(r, c);
    return Outputs{{"output", p.sample}};
  };
  return RunAndWrite(c, inputs, build,
                     {{"module", "transformer"}, {"model", folder}, {"attention", choices.ToString()}});
}

int TransformerCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " transformer"),
               "diffusers' PixArtTransformer2DModel (PixArt-alpha, PixArt-Sigma) from --model on hidden_states, "
               "timestep, encoder_hidden_states (+ encoder_attention_mask, resolution, aspect_ratio) from --input; "
               "writes output [B, out_channels, H, W].");
  ModelFlags m;
  app.String("--model", &m.model, "PATH",
             "a diffusers folder (with transformer/) or the transformer/ folder (required)");
  app.String("--config", &m.config, "PATH", "the config.json (or its folder) to build with; default: the folder's");
  app.String("--input", &m.common.input, "FILE", "safetensors file with the model's inputs (required)");
  app.String("--output", &m.common.output, "FILE", "safetensors file to write the outputs to, atomically (required)");
  app.Enum("--device", &m.common.device, {"cpu", "cuda"}, "where to run (cuda: the first GPU)");
  app.Enum("--dtype", &m.common.dtype, {"f32", "f16", "bf16"},
           "compute, parameter and output dtype; inputs and weights are converted to it");
  app.String("--attention", &m.attention, "CHOICE[,SCOPE=CHOICE...]",
             "every block's self-attention: self, na:K[:dilation], convblock[:K[:gate]] (default: 13, the "
             "released sigmoid gate), linfusion, window:W[:mode]; SCOPE=CHOICE overrides it for the blocks under "
             "SCOPE (e.g. transformer_blocks.3=na:13), the last match winning");
  app.String("--extra-weights", &m.extra_weights, "PATH",
             "safetensors file or folder read on top of the model's (the authors' ConvFusion conv1 weights, with "
             "--attention=convblock); a folder with a config.json also gives the config");
  if (const int code = app.Parse(argc, argv); code >= 0) return code;
  if (const int code = CheckModelFlags(app, m); code >= 0) return code;
  StatusOr<SelfAttentionChoices> choices = ParseSelfAttentionChoices(m.attention);
  if (!choices.ok()) return app.UsageError(absl::StrCat("--attention: ", choices.status().message()));
  return app.RunBody([&] { return RunTransformer(m, *choices); });
}

// ---- text-encoder: transformers' CLIPTextModel / CLIPTextModelWithProjection -----------

constexpr const char* kTextEncoderInputs = "text-encoder needs input_ids [B, T] (or --prompt)";

// The token ids (and mask) of --prompt with the tokenizer, padded to the model's positions.
Status TokenizePrompts(const std::string& tokenizer, const std::vector<std::string>& prompts, int64_t length,
                       std::map<std::string, Tensor>* out) {
  CF_ASSIGN_OR_RETURN(ClipTokenizer tok, ClipTokenizer::Load(tokenizer));
  std::vector<int64_t> ids, mask;
  for (size_t i = 0; i < prompts.size(); ++i) {
    StatusOr<ClipEncoding> e = tok.Tokenize(prompts[i], length);
    if (!e.ok()) return Status(e.status().code(), absl::StrCat("--prompt #", i + 1, ": ", e.status().message()));
    ids.insert(ids.end(), e->ids.begin(), e->ids.end());
    mask.insert(mask.end(), e->attention_mask.begin(), e->attention_mask.end());
  }
  const Shape shape{static_cast<int64_t>(prompts.size()), length};
  CF_ASSIGN_OR_RETURN((*out)["input_ids"], Tensor::FromValues<int64_t>(ids, shape));
  CF_ASSIGN_OR_RETURN((*out)["attention_mask"], Tensor::FromValues<int64_t>(mask, shape));
  return absl::OkStatus();
}

Status RunTextEncoder(const ModelFlags& m, int encoder, const std::vector<std::string>& prompts,
                      std::string tokenizer, bool use_mask) {
  namespace fs = std::filesystem;
  const CommonFlags& c = m.common;
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(DeviceOf(c)));
  const std::string component = encoder == 2 ? "text_encoder_2" : "text_encoder";
  CF_ASSIGN_OR_RETURN(std::optional<SingleFile> single, OpenSingleFile(m.model, component));
  std::string folder = m.model;
  ClipTextConfig config;
  WeightFiles files;
  if (single) {  // SD1.5's and SDXL's first encoder are CLIP ViT-L/14, SDXL's second OpenCLIP bigG
    if (!m.config.empty()) {
      CF_ASSIGN_OR_RETURN(config, ClipTextConfig::Load(m.config));
    } else {
      config = encoder == 2 ? ClipTextConfig::OpenClipBigG() : ClipTextConfig::ClipVitL14();
    }
    files = std::move(single->files);
  } else {
    CF_ASSIGN_OR_RETURN(folder, ComponentFolder(m.model, component, ""));
    CF_ASSIGN_OR_RETURN(config, ClipTextConfig::Load(m.config.empty() ? folder : m.config));
    CF_ASSIGN_OR_RETURN(files, WeightFiles::Open(folder));
  }

  std::map<std::string, Tensor> raw;  // input_ids (+ attention_mask) as given
  std::string source;
  if (!prompts.empty()) {
    if (tokenizer.empty()) {  // the diffusers folder's own tokenizer
      const fs::path t = fs::path(m.model) / (encoder == 2 ? "tokenizer_2" : "tokenizer");
      std::error_code ec;
      if (folder == m.model || !fs::is_directory(t, ec))
        return absl::InvalidArgumentError(absl::StrCat("--prompt: --model=", m.model, " has no ", t.filename().string(),
                                                       "/ folder; give --tokenizer=PATH"));
      tokenizer = t.string();
    }
    CF_RETURN_IF_ERROR(TokenizePrompts(tokenizer, prompts, config.max_positions, &raw));
    source = absl::StrCat(prompts.size(), " prompt(s) tokenized by ", tokenizer);
  } else {
    CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(c.input));
    CF_ASSIGN_OR_RETURN(raw["input_ids"], ReadInput(f, "input_ids", kTextEncoderInputs));
    CF_RETURN_IF_ERROR(CheckRank("input_ids", raw["input_ids"], 2, "[B, T]"));
    if (use_mask) {
      CF_ASSIGN_OR_RETURN(raw["attention_mask"], ReadInput(f, "attention_mask", "--attention-mask needs it, [B, T]"));
    }
    source = c.input;
  }
  const Tensor& ids = raw.at("input_ids");
  const int64_t B = ids.shape()[0], T = ids.shape()[1];
  if (T < 1 || T > config.max_positions)
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Describe("input_ids", ids), " has ", T,
                                                   " tokens; the model takes 1 to ", config.max_positions));
  std::map<std::string, Tensor> inputs;
  CF_ASSIGN_OR_RETURN(inputs["pooled_index"], ClipPooledIndex(ids, config));  // also checks every id
  CF_ASSIGN_OR_RETURN(std::vector<double> idv, ids.ToVector<double>());
  std::vector<int64_t> id64(idv.begin(), idv.end());
  CF_ASSIGN_OR_RETURN(inputs["input_ids"], Tensor::FromValues<int64_t>(id64, ids.shape()));
  if (use_mask) {
    const Tensor& mt = raw.at("attention_mask");
    if (mt.shape() != ids.shape())
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Describe("attention_mask", mt), " is not [B, T] = [",
                                                     B, ", ", T, "] (from ", Describe("input_ids", ids), ")"));
    CF_ASSIGN_OR_RETURN(std::vector<double> mv, mt.ToVector<double>());
    CF_ASSIGN_OR_RETURN(Tensor u8, Tensor::Empty(mt.shape(), DType::u8));
    for (size_t i = 0; i < mv.size(); ++i) u8.data<uint8_t>()[i] = mv[i] != 0 ? 1 : 0;
    inputs["attention_mask"] = u8;
  }

  ModelReport r;
  r.component = component;
  r.folder = folder;
  r.note = config.note;
  r.extra = absl::StrCat("  config: ", config.Describe(), ", pooled at ",
                         config.eos_token_id == 2 ? "argmax(input_ids) (eos_token_id 2, the legacy rule)"
                                                  : absl::StrCat("the first id ", config.eos_token_id),
                         "\n  input_ids [", B, ", ", T, "] from ", source, use_mask ? ", with attention_mask" : "",
                         "\n");
  const BuildFn build = [&](Builder& b, const std::map<std::string, Value>& in) {
    ClipTextInputs ti{.input_ids = in.at("input_ids"), .pooled_index = in.at("pooled_index")};
    if (use_mask) ti.attention_mask = in.at("attention_mask");
    ClipTextOutputs o = ClipTextModel(b, config, ti, {.params = {.dtype = ComputeDType(c)}});
    if (!b.ok()) return Outputs{};
    StatusOr<LoadedWeights> w = LoadClipTextWeights(b.graph(), files);
    if (!w.ok()) {
      b.Fail(w.status());
      return Outputs{};
    }
    for (auto& [name, t] : w->parameters) b.graph().mutable_value(b.graph().FindParameter(name)).data = t;
    for (int id : b.graph().Parameters()) r.parameters += b.graph().value(id).type.shape.numel();
    r.weights = absl::StrCat(w->Summary(), " from ", absl::StrJoin(files.files(), ", "));
    if (!w->unexpected.empty()) r.unexpected = "text_model.embeddings.position_ids (an index buffer, not a weight)";
    PrintReport(r, c);
    Outputs outs = {{"last_hidden_state", o.last_hidden_state}};
    if (config.num_layers >= 1)
      outs.push_back({"hidden_states_penultimate", o.hidden_states[o.hidden_states.size() - 2]});
    outs.push_back({"pooled_output", o.pooled_output});
    if (o.text_embeds.valid()) outs.push_back({"text_embeds", o.text_embeds});
    return outs;
  };
  return RunAndWrite(c, inputs, build, {{"module", "text-encoder"}, {"model", folder}});
}

int TextEncoderCommand(int argc, char** argv) {
  cli::App app(absl::StrCat(kProgram, " text-encoder"),
               "transformers' CLIPTextModel / CLIPTextModelWithProjection from --model on input_ids [B, T] from "
               "--input (or --prompt); writes last_hidden_state [B, T, D], hidden_states_penultimate [B, T, D] "
               "(SDXL's conditioning), pooled_output [B, D] and, with a projection, text_embeds [B, P].");
  ModelFlags m;
  int64_t encoder = 1;
  std::string tokenizer, unused_prompt;
  bool use_mask = false;
  AddModelFlags(app, &m, "text_encoder");
  app.Int("--encoder", &encoder, 1, 2, "with a diffusers folder: 1 = text_encoder/, 2 = text_encoder_2/ (SDXL)");
  app.String("--prompt", &unused_prompt, "TEXT", "a prompt instead of --input (repeat for a batch)");
  app.String("--tokenizer", &tokenizer, "PATH",
             "tokenizer folder or .gz for --prompt (default: the diffusers folder's tokenizer/ or tokenizer_2/)");
  app.Flag("--attention-mask", &use_mask,
           "also mask padded tokens with attention_mask (from --input, or the tokenizer's); SD pipelines do not");
  std::vector<std::string> prompts;
  std::vector<char*> rest;
  if (const Status st = cli::TakeRepeated(argc, argv, "--prompt", &prompts, &rest); !st.ok())
    return app.UsageError(std::string(st.message()));
  if (const int code = app.Parse(static_cast<int>(rest.size()), rest.data()); code >= 0) return code;
  if (m.model.empty()) return app.UsageError("--model: is required");
  if (m.common.output.empty()) return app.UsageError("--output: is required");
  if (prompts.empty() == m.common.input.empty())
    return app.UsageError(prompts.empty() ? "--input or --prompt: one is required"
                                           : "--input and --prompt: give one, not both");
  if (!tokenizer.empty() && prompts.empty()) return app.UsageError("--tokenizer: only with --prompt");
  return app.RunBody([&] { return RunTextEncoder(m, static_cast<int>(encoder), prompts, tokenizer, use_mask); });
}

// ---- The table of subcommands -----------------------------------------------------

const std::vector<cli::Subcommand> kSubcommands = {
    {"attention", "scaled dot-product attention: q, k, v [B, N, heads, d], optional mask [B, Nkv]", AttentionCommand},
    {"neighborhood", "2D neighborhood attention: q, k, v [B, H, W, heads, d], --kernel, --dilation",
     NeighborhoodCommand},
    {"convblock", "the ConvBlock: input [B, H, W, C], weights under conv1.*, --kernel, --gate, --scales",
     ConvBlockCommand},
    {"tokenize", "CLIP token ids of prompts: --tokenizer=FOLDER|.gz, --prompt (repeatable), --max-length",
     TokenizeCommand},
    {"unet", "diffusers UNet2DConditionModel: --model=FOLDER, sample, timestep, encoder_hidden_states -> output",
     UNetCommand},
    {"transformer",
     "diffusers PixArtTransformer2DModel: --model=FOLDER, hidden_states, timestep, encoder_hidden_states -> output",
     TransformerCommand},
    {"vae-decode", "diffusers AutoencoderKL decoder: --model=FOLDER, latents -> output", VaeDecodeCommand},
    {"vae-encode", "diffusers AutoencoderKL encoder: --model=FOLDER, image -> latent_mean, latent_logvar",
     VaeEncodeCommand},
    {"text-encoder",
     "transformers CLIP text encoder: --model=FOLDER [--encoder=2], input_ids or --prompt -> last_hidden_state, "
     "hidden_states_penultimate, pooled_output (+ text_embeds)",
     TextEncoderCommand},
};

std::string TopHelp() {
  return cli::SubcommandHelp(kProgram,
                             absl::StrCat("Runs one module on tensors from a safetensors file and writes its outputs "
                                          "to another.\nUsage: ",
                                          kProgram, " SUBCOMMAND --input=IN.safetensors --output=OUT.safetensors [flags]\n"),
                             kSubcommands, 14);
}

int Main(int argc, char** argv) { return cli::Dispatch(kProgram, kSubcommands, TopHelp(), argc, argv); }

}  // namespace
}  // namespace cf

int main(int argc, char** argv) { return cf::Main(argc, argv); }
