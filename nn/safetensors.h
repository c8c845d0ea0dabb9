// Reading and writing safetensors files (the format of Hugging Face
// checkpoints): an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//    ..., "__metadata__": {"key": "value"}}
// then the data buffer; offsets are relative to the buffer, tensors are
// row-major and little-endian.
//
// The reader memory-maps the file and validates the whole header at Open, so
// that a truncated or hostile file is a Status error naming the file, the
// tensor and what is wrong, never a crash or a read out of bounds: N at most
// 100 MB and inside the file, a JSON object (nesting at most 3 deep, names
// unique, "__metadata__" string to string), each entry a known dtype, a shape
// of non-negative integers whose byte size does not overflow, data_offsets
// inside the buffer with end - begin equal to that byte size, and no two
// tensors' bytes overlapping. Gaps between tensors are allowed.
//
//   CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open("unet.safetensors"));
//   for (const std::string& name : f.names()) { ... f.Info(name)->shape ... }
//   CF_ASSIGN_OR_RETURN(Tensor w, f.Read("conv_in.weight"));   // a CPU copy
//
// The writer writes the header padded with spaces to a multiple of 8 bytes
// (as the reference implementation does), the tensors ordered by element size,
// largest first, so every tensor is aligned to its element size; the file is
// written atomically (a temporary in the same folder, renamed).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "runtime/shape.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace cf {

// The element types of the format. Read converts the ones the runtime lacks:
// I8, I16, U16 -> i32; U32, U64 -> i64 (U64 values above 2^63 - 1 are an
// error); F8_E4M3 (e4m3fn), F8_E5M2 -> f32.
enum class SafetensorsDType : uint8_t {
  kBool, kU8, kI8, kI16, kU16, kI32, kU32, kI64, kU64, kF8E4M3, kF8E5M2, kF16, kBF16, kF32, kF64
};
// "F32", "BF16", "F8_E4M3", ...: the name in the header.
const char* SafetensorsDTypeName(SafetensorsDType t);
int64_t SafetensorsDTypeSize(SafetensorsDType t);
StatusOr<SafetensorsDType> ParseSafetensorsDType(std::string_view name);
// The runtime dtype Read returns for `t`.
DType SafetensorsReadDType(SafetensorsDType t);
// The format's name for a runtime dtype (f32 -> F32, boolean -> BOOL, ...).
SafetensorsDType SafetensorsDTypeOf(DType t);

struct SafetensorsTensorInfo {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  Shape shape;        // rank 0: a scalar
  int64_t begin = 0;  // byte offsets into the data buffer, [begin, end)
  int64_t end = 0;
  int64_t numel() const { return shape.numel(); }
  int64_t nbytes() const { return end - begin; }
};

class SafetensorsFile {
 public:
  // Maps `path` and validates its header (see the top of this file).
  static StatusOr<SafetensorsFile> Open(const std::string& path);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // Tensor names in the header's order.
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const;
  // NotFound (naming the file and the tensor) for an unknown name.
  StatusOr<SafetensorsTensorInfo> Info(const std::string& name) const;
  // The header's "__metadata__" (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A new CPU tensor of SafetensorsReadDType(dtype) holding the tensor's
  // values (booleans other than 0 and 1 read as true).
  StatusOr<Tensor> Read(const std::string& name) const;
  // Zero-copy: the tensor's bytes in the mapping.
  StatusOr<absl::Span<const uint8_t>> Bytes(const std::string& name) const;
  // Zero-copy: a CPU tensor borrowing the mapping, for dtypes the runtime has
  // (F32, F16, BF16, F64, I32, I64, U8; not BOOL, whose bytes may be other
  // than 0 and 1) when the bytes are aligned to the element size. Valid only
  // while this SafetensorsFile lives; writes to it change a private copy of
  // the page, never the file.
  StatusOr<Tensor> View(const std::string& name) const;

  // The data buffer's size and where it starts in the file (8 + N).
  int64_t data_bytes() const { return data_bytes_; }
  int64_t data_start() const { return data_start_; }

 private:
  struct Mapping;
  SafetensorsFile() = default;
  StatusOr<const SafetensorsTensorInfo*> Find(const std::string& name) const;
  const uint8_t* DataOf(const SafetensorsTensorInfo& info) const;

  std::string path_;
  std::unique_ptr<Mapping> mapping_;
  int64_t data_start_ = 0, data_bytes_ = 0;
  std::vector<std::string> names_;
  std::vector<SafetensorsTensorInfo> infos_;  // in names_ order
  std::map<std::string, size_t> index_;       // name -> position in infos_
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (any devices and runtime dtypes; names unique, non-empty,
// valid UTF-8 and not "__metadata__") and `metadata` to `path`, atomically:
// into a temporary ".NAME.tmp.XXXXXX" beside it, flushed, renamed over `path`;
// on any error the temporary is removed and `path` is left as it was.
Status WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

}  // namespace cf
