// CUDA kernels of conv2d and its backward ops (definitions in conv2d.cc).
// Depthwise convs (groups == Cin == Cout) use our own kernels
// (conv_depthwise_kernels.cuh); everything else goes to cuDNN's legacy
// convolution API with NHWC descriptors: f32 compute for every storage type,
// exact f32 (CUDNN_FMA_MATH) unless allow_tf32, tensor cores for f16/bf16.
// The algorithm is found once per (device, op, geometry, dtype, math) with
// cudnnFind*AlgorithmEx on the real buffers (or, while the stream is being
// captured into a CUDA graph, taken from cudnnGet*_v7) and cached; the
// workspace comes from ctx.workspace. One cuDNN handle per device, created
// lazily and bound to the caller's stream for each call.
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "ops/conv/conv_depthwise_cuda.h"
#include "ops/conv/conv_epilogue_kernels.cuh"
#include "ops/conv/conv_params.h"
#include "ops/cuda_util.cuh"
#include "runtime/device_guard.h"

namespace cf {
namespace {

// Largest workspace an algorithm may use (the executor keeps the largest
// workspace any kernel asked for).
constexpr size_t kMaxWorkspace = size_t{64} << 20;

struct CudnnHandle {
  cudnnHandle_t h = nullptr;
  std::mutex mu;  // held while the handle is bound to one caller's stream
};

StatusOr<CudnnHandle*> HandleFor(int device) {
  static std::mutex mu;
  static auto* handles = new std::map<int, CudnnHandle*>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles->find(device);
  if (it != handles->end()) return it->second;
  auto* entry = new CudnnHandle();
  CF_CUDNN_CHECK(cudnnCreate(&entry->h));
  (*handles)[device] = entry;
  return entry;
}

// RAII cuDNN descriptors.
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  ~TensorDesc() { if (d) cudnnDestroyTensorDescriptor(d); }
};
struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  ~FilterDesc() { if (d) cudnnDestroyFilterDescriptor(d); }
};
struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ~ConvDesc() { if (d) cudnnDestroyConvolutionDescriptor(d); }
};

struct Descs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  cudnnDataType_t type;
  cudnnMathType_t math;
};

Status MakeDescs(const ConvParams& p, DType dtype, bool allow_tf32, Descs* d) {
  d->type = dtype == DType::f16 ? CUDNN_DATA_HALF : dtype == DType::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  d->math = dtype == DType::f32 ? (allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH) : CUDNN_TENSOR_OP_MATH;
  CF_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->x.d));
  CF_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->y.d));
  CF_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d->w.d));
  CF_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d->conv.d));
  CF_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->x.d, CUDNN_TENSOR_NHWC, d->type, int(p.n), int(p.cin), int(p.h),
                                            int(p.w)));
  CF_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->y.d, CUDNN_TENSOR_NHWC, d->type, int(p.n), int(p.cout), int(p.ho),
                                            int(p.wo)));
  // Our weight [Cout, kh, kw, Cin/groups] is cuDNN's NHWC filter (K, R, S, C).
  CF_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d->w.d, d->type, CUDNN_TENSOR_NHWC, int(p.cout), int(p.cin_g()),
                                            int(p.kh), int(p.kw)));
  CF_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d->conv.d, int(p.ph), int(p.pw), int(p.sh), int(p.sw), int(p.dh),
                                                 int(p.dw), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CF_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d->conv.d, int(p.groups)));
  CF_CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv.d, d->math));
  return absl::OkStatus();
}

// The chosen algorithm of one (device, direction, geometry, dtype, math).
struct Choice {
  int algo = 0;
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};
std::mutex g_choice_mu;
std::unordered_map<std::string, Choice>& Choices() {
  static auto* m = new std::unordered_map<std::string, Choice>();
  return *m;
}

// First usable entry of cuDNN's perf list (sorted best first): succeeded,
// fits the workspace cap, and keeps f32 exact unless TF32 is allowed.
template <typename Perf> bool Pick(const Perf* perf, int n, const Descs& d, Choice* c) {
  for (int i = 0; i < n; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kMaxWorkspace) continue;
    if (d.math == CUDNN_FMA_MATH) {
      // Exact f32: never an entry that reports tensor-core math; run under
      // FMA math whatever else the entry reports (it was found under it).
      if (perf[i].mathType == CUDNN_TENSOR_OP_MATH || perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
        continue;
      c->math = CUDNN_FMA_MATH;
    } else {
      c->math = perf[i].mathType;  // cuDNN's advice: run with the math type it measured
    }
    c->algo = static_cast<int>(perf[i].algo);
    c->workspace = perf[i].memory;
    return true;
  }
  return false;
}

enum class Dir { kForward, kBackwardData, kBackwardFilter };

// Buffers of one call: x, w, y for the forward; dy, w, dx for backward data;
// x, dy, dw for backward filter.
struct Buffers {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* y = nullptr;  // dy in the backward directions
  void* out = nullptr;
};

constexpr int kMaxAlgos = 16;  // entries asked of cuDNN's algorithm lists

// What differs between the directions: cuDNN's perf-result type and its three
// calls, measuring the algorithms on the call's buffers (Find), asking the
// heuristic (Get, while a CUDA graph is being captured), and running one.
template <Dir D> struct CudnnDir;

template <> struct CudnnDir<Dir::kForward> {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static Status Find(cudnnHandle_t h, const Descs& d, const Buffers& b, void* ws, Perf* perf, int* n) {
    CF_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x.d, b.x, d.w.d, b.w, d.conv.d, d.y.d, b.out, kMaxAlgos,
                                                          n, perf, ws, kMaxWorkspace));
    return absl::OkStatus();
  }
  static Status Get(cudnnHandle_t h, const Descs& d, Perf* perf, int* n) {
    CF_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.d, d.w.d, d.conv.d, d.y.d, kMaxAlgos, n, perf));
    return absl::OkStatus();
  }
  static Status Run(cudnnHandle_t h, const Descs& d, const Buffers& b, int algo, void* ws, size_t ws_bytes) {
    const float alpha = 1.0f, beta = 0.0f;
    CF_CUDNN_CHECK(cudnnConvolutionForward(h, &alpha, d.x.d, b.x, d.w.d, b.w, d.conv.d,
                                           static_cast<cudnnConvolutionFwdAlgo_t>(algo), ws, ws_bytes, &beta, d.y.d,
                                           b.out));
    return absl::OkStatus();
  }
};

template <> struct CudnnDir<Dir::kBackwardData> {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static Status Find(cudnnHandle_t h, const Descs& d, const Buffers& b, void* ws, Perf* perf, int* n) {
    CF_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w.d, b.w, d.y.d, b.y, d.conv.d, d.x.d, b.out,
                                                               kMaxAlgos, n, perf, ws, kMaxWorkspace));
    return absl::OkStatus();
  }
  static Status Get(cudnnHandle_t h, const Descs& d, Perf* perf, int* n) {
    CF_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.d, d.y.d, d.conv.d, d.x.d, kMaxAlgos, n, perf));
    return absl::OkStatus();
  }
  static Status Run(cudnnHandle_t h, const Descs& d, const Buffers& b, int algo, void* ws, size_t ws_bytes) {
    const float alpha = 1.0f, beta = 0.0f;
    CF_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &alpha, d.w.d, b.w, d.y.d, b.y, d.conv.d,
                                                static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), ws, ws_bytes, &beta,
                                                d.x.d, b.out));
    return absl::OkStatus();
  }
};

template <> struct CudnnDir<Dir::kBackwardFilter> {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static Status Find(cudnnHandle_t h, const Descs& d, const Buffers& b, void* ws, Perf* perf, int* n) {
    CF_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x.d, b.x, d.y.d, b.y, d.conv.d, d.w.d, b.out,
                                                                 kMaxAlgos, n, perf, ws, kMaxWorkspace));
    return absl::OkStatus();
  }
  static Status Get(cudnnHandle_t h, const Descs& d, Perf* perf, int* n) {
    CF_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.d, d.y.d, d.conv.d, d.w.d, kMaxAlgos, n, perf));
    return absl::OkStatus();
  }
  static Status Run(cudnnHandle_t h, const Descs& d, const Buffers& b, int algo, void* ws, size_t ws_bytes) {
    const float alpha = 1.0f, beta = 0.0f;
    CF_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &alpha, d.x.d, b.x, d.y.d, b.y, d.conv.d,
                                                  static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), ws, ws_bytes,
                                                  &beta, d.w.d, b.out));
    return absl::OkStatus();
  }
};

template <Dir D>
StatusOr<Choice> ChooseAlgo(const ConvParams& p, DType dtype, const Descs& d, cudnnHandle_t h, cudaStream_t stream,
                            const Buffers& b, KernelContext& ctx) {
  const std::string key = absl::StrCat(ctx.device.ordinal, "|", static_cast<int>(D), "|", p.ToString(), "|",
                                       DTypeName(dtype), "|", static_cast<int>(d.math));
  {
    std::lock_guard<std::mutex> lock(g_choice_mu);
    auto it = Choices().find(key);
    if (it != Choices().end()) return it->second;
  }
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CF_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  const bool find = capture == cudaStreamCaptureStatusNone;
  typename CudnnDir<D>::Perf perf[kMaxAlgos];
  int n = 0;
  if (find) {
    // Find measures every algorithm on our buffers; it needs one workspace
    // big enough for the candidates it should consider.
    CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(static_cast<int64_t>(kMaxWorkspace)));
    CF_RETURN_IF_ERROR(CudnnDir<D>::Find(h, d, b, ws, perf, &n));
  } else {
    CF_RETURN_IF_ERROR(CudnnDir<D>::Get(h, d, perf, &n));
  }
  Choice c;
  if (!Pick(perf, n, d, &c))
    return absl::UnimplementedError(
        absl::StrCat("cuDNN has no usable algorithm for ", ctx.op, " with ", p.ToString(), " in ", DTypeName(dtype)));
  if (find) {  // only measured choices are kept; heuristic ones are retried later
    std::lock_guard<std::mutex> lock(g_choice_mu);
    Choices().emplace(key, c);
  }
  return c;
}

int ActCode(gemm::Activation a) {
  switch (a) {
    case gemm::Activation::kNone: return 0;
    case gemm::Activation::kGelu: return 1;
    case gemm::Activation::kGeluTanh: return 2;
    case gemm::Activation::kSilu: return 3;
  }
  return 0;
}

template <Dir D>
Status RunCudnn(const ConvParams& p, DType dtype, KernelContext& ctx, const Buffers& b) {
  Descs d;
  CF_RETURN_IF_ERROR(MakeDescs(p, dtype, ctx.attrs.Bool("allow_tf32", false), &d));
  CF_ASSIGN_OR_RETURN(CudnnHandle * handle, HandleFor(ctx.device.ordinal));
  cudaStream_t stream = CudaStreamOf(ctx);
  std::lock_guard<std::mutex> lock(handle->mu);
  CF_CUDNN_CHECK(cudnnSetStream(handle->h, stream));
  CF_ASSIGN_OR_RETURN(Choice c, ChooseAlgo<D>(p, dtype, d, handle->h, stream, b, ctx));
  CF_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
  void* ws = nullptr;
  if (c.workspace > 0) {
    CF_ASSIGN_OR_RETURN(ws, ctx.workspace(static_cast<int64_t>(c.workspace)));
  }
  return CudnnDir<D>::Run(handle->h, d, b, c.algo, ws, c.workspace);
}

// Runs fn(T{}) on the op's device, T the storage type of input 0.
template <typename F>
Status OnDevice(KernelContext& ctx, F&& fn) {
  CudaDeviceGuard guard(ctx.device.ordinal);
  CF_RETURN_IF_ERROR(guard.status());
  return DispatchCudaFloat(ctx.inputs[0].dtype(), ctx.op, fn);
}

StatusOr<Shape> ShapeAttr(const Attrs& attrs, const char* name) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> dims, attrs.RequireInts(name));
  return Shape(dims);
}

Status ConvCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(ConvParams p, ConvParamsOf(ctx.attrs, ctx.inputs[0].shape(), ctx.inputs[1].shape()));
  CF_ASSIGN_OR_RETURN(ConvForm f, ConvFormOf(ctx.attrs, ctx.inputs.size()));
  return OnDevice(ctx, [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* x = ctx.inputs[0].data<T>();
    const T* w = ctx.inputs[1].data<T>();
    const T* bias = f.has_bias ? ctx.inputs[2].data<T>() : nullptr;
    T* y = ctx.outputs[0].data<T>();
    if (p.n * p.ho * p.wo * p.cout == 0) return absl::OkStatus();
    if (f.fused()) {
      // The plain conv (depthwise: with its bias), then one epilogue pass.
      const int64_t count = p.n * p.ho * p.wo * p.cout;
      if (p.cin == 0) {
        CF_CUDA_CHECK(cudaMemsetAsync(y, 0, count * sizeof(T), CudaStreamOf(ctx)));
      } else if (p.depthwise()) {
        CF_RETURN_IF_ERROR(DepthwiseForwardCuda<T>(p, x, w, bias, y, CudaStreamOf(ctx)));
      } else {
        CF_RETURN_IF_ERROR(RunCudnn<Dir::kForward>(p, ctx.inputs[0].dtype(), ctx, Buffers{x, w, nullptr, y}));
      }
      const T* post_bias = (p.cin != 0 && p.depthwise()) ? nullptr : bias;
      const T* image_bias = f.image_bias ? ctx.inputs[f.image_bias_input()].data<T>() : nullptr;
      const T* residual = f.residual ? ctx.inputs[f.residual_input()].data<T>() : nullptr;
      epilogue::FusedEpilogue<T><<<GridFor(count), 256, 0, CudaStreamOf(ctx)>>>(y, count, p.cout, p.ho * p.wo,
                                                                                post_bias, image_bias, ActCode(f.act),
                                                                                residual);
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    }
    if (p.cin == 0) {  // no input channels: y = bias (or 0), as on the CPU; cuDNN takes no empty tensors
      const int64_t count = p.n * p.ho * p.wo * p.cout;
      CF_CUDA_CHECK(cudaMemsetAsync(y, 0, count * sizeof(T), CudaStreamOf(ctx)));
      if (bias) {
        epilogue::AddBias<T><<<GridFor(count), 256, 0, CudaStreamOf(ctx)>>>(y, bias, count, p.cout);
        CF_CUDA_CHECK_LAUNCH();
      }
      return absl::OkStatus();
    }
    if (p.depthwise()) return DepthwiseForwardCuda<T>(p, x, w, bias, y, CudaStreamOf(ctx));
    CF_RETURN_IF_ERROR(RunCudnn<Dir::kForward>(p, ctx.inputs[0].dtype(), ctx, Buffers{x, w, nullptr, y}));
    if (bias) {
      const int64_t count = p.n * p.ho * p.wo * p.cout;
      epilogue::AddBias<T><<<GridFor(count), 256, 0, CudaStreamOf(ctx)>>>(y, bias, count, p.cout);
      CF_CUDA_CHECK_LAUNCH();
    }
    return absl::OkStatus();
  });
}

Status BackwardInputCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(Shape xs, ShapeAttr(ctx.attrs, "input_shape"));
  CF_ASSIGN_OR_RETURN(ConvParams p, ConvParamsOf(ctx.attrs, xs, ctx.inputs[1].shape()));
  return OnDevice(ctx, [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* dy = ctx.inputs[0].data<T>();
    const T* w = ctx.inputs[1].data<T>();
    T* dx = ctx.outputs[0].data<T>();
    const int64_t count = p.n * p.h * p.w * p.cin;
    if (count == 0) return absl::OkStatus();
    if (p.cout == 0) {  // no output channels: nothing flows back (cuDNN takes no empty tensors)
      CF_CUDA_CHECK(cudaMemsetAsync(dx, 0, count * sizeof(T), CudaStreamOf(ctx)));
      return absl::OkStatus();
    }
    if (p.depthwise()) return DepthwiseBackwardInputCuda<T>(p, dy, w, dx, CudaStreamOf(ctx));
    return RunCudnn<Dir::kBackwardData>(p, ctx.inputs[0].dtype(), ctx, Buffers{nullptr, w, dy, dx});
  });
}

Status BackwardWeightCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(Shape ws, ShapeAttr(ctx.attrs, "weight_shape"));
  CF_ASSIGN_OR_RETURN(ConvParams p, ConvParamsOf(ctx.attrs, ctx.inputs[0].shape(), ws));
  return OnDevice(ctx, [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* x = ctx.inputs[0].data<T>();
    const T* dy = ctx.inputs[1].data<T>();
    T* dw = ctx.outputs[0].data<T>();
    if (p.cout * p.kdim() == 0) return absl::OkStatus();  // an empty weight (Cin or Cout = 0)
    if (p.depthwise()) return DepthwiseBackwardWeightCuda<T>(p, x, dy, dw, CudaStreamOf(ctx), ctx.workspace);
    if (p.n * p.ho * p.wo == 0) {
      CF_CUDA_CHECK(cudaMemsetAsync(dw, 0, p.cout * p.kdim() * sizeof(T), CudaStreamOf(ctx)));
      return absl::OkStatus();
    }
    return RunCudnn<Dir::kBackwardFilter>(p, ctx.inputs[0].dtype(), ctx, Buffers{x, nullptr, dy, dw});
  });
}

}  // namespace

CF_REGISTER_KERNEL("conv2d", kCUDA, ConvCuda);
CF_REGISTER_KERNEL("conv2d_backward_input", kCUDA, BackwardInputCuda);
CF_REGISTER_KERNEL("conv2d_backward_weight", kCUDA, BackwardWeightCuda);

}  // namespace cf
