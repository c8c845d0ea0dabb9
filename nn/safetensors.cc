#include "nn/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "nlohmann/json.hpp"

namespace cf {

// The format is little-endian and tensors are copied bytewise.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using Json = nlohmann::ordered_json;  // keeps the header's order for names()

constexpr int64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's bound
constexpr int kMaxDepth = 3;                      // root object > entry object > shape array
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeEntry {
  SafetensorsDType t;
  const char* name;
  int64_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {SafetensorsDType::kBool, "BOOL", 1},    {SafetensorsDType::kU8, "U8", 1},
    {SafetensorsDType::kI8, "I8", 1},        {SafetensorsDType::kI16, "I16", 2},
    {SafetensorsDType::kU16, "U16", 2},      {SafetensorsDType::kI32, "I32", 4},
    {SafetensorsDType::kU32, "U32", 4},      {SafetensorsDType::kI64, "I64", 8},
    {SafetensorsDType::kU64, "U64", 8},      {SafetensorsDType::kF8E4M3, "F8_E4M3", 1},
    {SafetensorsDType::kF8E5M2, "F8_E5M2", 1}, {SafetensorsDType::kF16, "F16", 2},
    {SafetensorsDType::kBF16, "BF16", 2},    {SafetensorsDType::kF32, "F32", 4},
    {SafetensorsDType::kF64, "F64", 8},
};

// A name from a possibly hostile file, printable and bounded, for messages.
std::string Quote(std::string_view s) {
  constexpr size_t kMax = 80;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\x%02x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMax) absl::StrAppend(&out, "...(", s.size(), " bytes)");
  return out + "'";
}

Status Bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors '", path, "': ", what));
}

std::optional<int64_t> NonNegativeInt(const Json& j) {
  if (j.is_number_unsigned()) {
    const uint64_t u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v < 0) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

// Thrown from the parser callback to stop parsing a header early.
struct HeaderRejected {
  std::string what;
};

// f8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN.
float F8E4M3ToF32(uint8_t b) {
  const bool neg = (b & 0x80) != 0;
  const int e = (b >> 3) & 0xf, m = b & 0x7;
  float v;
  if (e == 0xf && m == 0x7) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(static_cast<float>(m), -9);  // subnormal: m/8 * 2^-6
  } else {
    v = std::ldexp(1.0f + static_cast<float>(m) / 8.0f, e - 7);
  }
  return neg ? -v : v;
}
// f8 e5m2 is the top byte of an IEEE binary16.
float F8E5M2ToF32(uint8_t b) { return F16BitsToF32(static_cast<uint16_t>(b << 8)); }

template <typename T>
T LoadLE(const uint8_t* p, int64_t i) {
  T v;
  std::memcpy(&v, p + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}

// A file written under a temporary name beside `path` and renamed over it by
// Commit(); removed if it is destroyed uncommitted.
class AtomicFile {
 public:
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!tmp_.empty() && !committed_) ::unlink(tmp_.c_str());
  }

  Status Open(const std::string& path) {
    namespace fs = std::filesystem;
    path_ = path;
    if (path.empty()) return absl::InvalidArgumentError("safetensors: the output path is empty");
    const fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p, ec)) return Error("it is a directory");
    if (p.filename().empty()) return Error("a file name cannot end in '/'");
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir, ec)) return Error(absl::StrCat("'", dir.string(), "' is not a directory"));
    std::string tmpl = (dir / ("." + p.filename().string() + ".tmp.XXXXXX")).string();
    fd_ = ::mkstemp(tmpl.data());
    if (fd_ < 0) return Error(absl::StrCat("cannot create a temporary file in '", dir.string(), "': ", std::strerror(errno)));
    tmp_ = tmpl;
    // mkstemp makes the file 0600; give it the mode a plain open() would.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    if (::fchmod(fd_, 0666 & ~mask) != 0) return Errno("fchmod");
    return absl::OkStatus();
  }

  Status Write(const void* data, int64_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const size_t chunk = static_cast<size_t>(std::min<int64_t>(bytes, int64_t{1} << 30));
      const ssize_t n = ::write(fd_, p, chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n == 0) errno = EIO;
        return Errno("write");
      }
      p += n;
      bytes -= n;
    }
    return absl::OkStatus();
  }

  Status Commit() {
    if (::fsync(fd_) != 0) return Errno("fsync");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Errno("close");
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) return Errno("rename");
    committed_ = true;
    return absl::OkStatus();
  }

 private:
  Status Error(absl::string_view what) const {
    return absl::UnavailableError(absl::StrCat("cannot write '", path_, "': ", what));
  }
  Status Errno(const char* call) const { return Error(absl::StrCat(call, ": ", std::strerror(errno))); }

  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

const char* SafetensorsDTypeName(SafetensorsDType t) {
  for (const DTypeEntry& e : kDTypes)
    if (e.t == t) return e.name;
  return "?";
}

int64_t SafetensorsDTypeSize(SafetensorsDType t) {
  for (const DTypeEntry& e : kDTypes)
    if (e.t == t) return e.size;
  return 0;
}

StatusOr<SafetensorsDType> ParseSafetensorsDType(std::string_view name) {
  for (const DTypeEntry& e : kDTypes)
    if (name == e.name) return e.t;
  return absl::InvalidArgumentError(absl::StrCat("unknown safetensors dtype ", Quote(name)));
}

DType SafetensorsReadDType(SafetensorsDType t) {
  switch (t) {
    case SafetensorsDType::kBool: return DType::boolean;
    case SafetensorsDType::kU8: return DType::u8;
    case SafetensorsDType::kI8:
    case SafetensorsDType::kI16:
    case SafetensorsDType::kU16:
    case SafetensorsDType::kI32: return DType::i32;
    case SafetensorsDType::kU32:
    case SafetensorsDType::kI64:
    case SafetensorsDType::kU64: return DType::i64;
    case SafetensorsDType::kF8E4M3:
    case SafetensorsDType::kF8E5M2:
    case SafetensorsDType::kF32: return DType::f32;
    case SafetensorsDType::kF16: return DType::f16;
    case SafetensorsDType::kBF16: return DType::bf16;
    case SafetensorsDType::kF64: return DType::f64;
  }
  return DType::f32;
}

SafetensorsDType SafetensorsDTypeOf(DType t) {
  switch (t) {
    case DType::f32: return SafetensorsDType::kF32;
    case DType::f16: return SafetensorsDType::kF16;
    case DType::bf16: return SafetensorsDType::kBF16;
    case DType::f64: return SafetensorsDType::kF64;
    case DType::i32: return SafetensorsDType::kI32;
    case DType::i64: return SafetensorsDType::kI64;
    case DType::u8: return SafetensorsDType::kU8;
    case DType::boolean: return SafetensorsDType::kBool;
  }
  return SafetensorsDType::kF32;
}

// ---- Reading --------------------------------------------------------------------

struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr != nullptr) ::munmap(addr, size);
  }
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(addr); }
};

SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const std::string why = std::strerror(errno);
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("safetensors '", path, "'", ": ", why));
    return absl::UnavailableError(absl::StrCat("safetensors '", path, "'", ": cannot open: ", why));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Bad(path, "not a regular file");
  }
  const int64_t size = static_cast<int64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Bad(path, absl::StrCat("truncated: ", size, " bytes, less than the 8-byte header length"));
  }
  // MAP_PRIVATE with write access: a View that is written to changes a
  // private copy of the page, never the file (and never faults).
  void* addr = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int mmap_errno = errno;
  ::close(fd);
  if (addr == MAP_FAILED)
    return absl::UnavailableError(
        absl::StrCat("safetensors '", path, "'", ": cannot map ", size, " bytes: ", std::strerror(mmap_errno)));
  f.mapping_ = std::make_unique<Mapping>();
  f.mapping_->addr = addr;
  f.mapping_->size = static_cast<size_t>(size);
  const uint8_t* bytes = f.mapping_->bytes();

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > static_cast<uint64_t>(kMaxHeaderBytes))
    return Bad(path, absl::StrCat("header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes"));
  if (static_cast<int64_t>(n) > size - 8)
    return Bad(path, absl::StrCat("truncated: the header length ", n, " runs past the end of the file (", size,
                                  " bytes)"));
  f.data_start_ = 8 + static_cast<int64_t>(n);
  f.data_bytes_ = size - f.data_start_;

  // Parse, rejecting nesting deeper than the format has and repeated keys
  // (nlohmann keeps the last of a repeated key silently).
  std::vector<std::set<std::string>> keys(kMaxDepth + 1);
  Json::parser_callback_t check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    using E = Json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      if (depth >= kMaxDepth) throw HeaderRejected{absl::StrCat("the header nests deeper than ", kMaxDepth, " levels")};
      keys[static_cast<size_t>(depth) + 1].clear();
    } else if (event == E::key) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys[static_cast<size_t>(depth)].insert(k).second)
        throw HeaderRejected{depth == 1 ? absl::StrCat("tensor ", Quote(k), " appears twice")
                                        : absl::StrCat("key ", Quote(k), " appears twice in an entry")};
    }
    return true;
  };
  Json header;
  try {
    const char* begin = reinterpret_cast<const char*>(bytes + 8);
    header = Json::parse(begin, begin + n, check);
  } catch (const HeaderRejected& e) {
    return Bad(path, e.what);
  } catch (const Json::exception& e) {
    return Bad(path, absl::StrCat("the header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) return Bad(path, "the header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const Json& entry = it.value();
    if (name == kMetadataKey) {
      if (!entry.is_object()) return Bad(path, "__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          return Bad(path, absl::StrCat("__metadata__ ", Quote(m.key()), " is not a string"));
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string what = absl::StrCat("tensor ", Quote(name), ": ");
    if (!entry.is_object()) return Bad(path, what + "the entry is not an object");
    SafetensorsTensorInfo info;
    info.name = name;
    const auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) return Bad(path, what + "no dtype string");
    auto parsed = ParseSafetensorsDType(dtype->get_ref<const std::string&>());
    if (!parsed.ok()) return Bad(path, what + std::string(parsed.status().message()));
    info.dtype = *parsed;

    const auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array()) return Bad(path, what + "no shape array");
    // Bytes = product of the dims times the element size, checked in order
    // like the reference (so [2^40, 2^40, 0] is refused too).
    int64_t nbytes = SafetensorsDTypeSize(info.dtype);
    for (const Json& d : *shape) {
      const std::optional<int64_t> v = NonNegativeInt(d);
      if (!v) return Bad(path, absl::StrCat(what, "shape entry ", d.dump(), " is not a non-negative integer"));
      info.shape.push_back(*v);
      if (__builtin_mul_overflow(nbytes, *v, &nbytes))
        return Bad(path, absl::StrCat(what, "the byte size of shape ", shape->dump(), " overflows"));
    }

    const auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2)
      return Bad(path, what + "data_offsets is not a pair [begin, end]");
    const std::optional<int64_t> b = NonNegativeInt((*offsets)[0]), e = NonNegativeInt((*offsets)[1]);
    if (!b || !e) return Bad(path, absl::StrCat(what, "data_offsets ", offsets->dump(), " are not non-negative integers"));
    if (*b > *e) return Bad(path, absl::StrCat(what, "data_offsets ", offsets->dump(), " end before they begin"));
    if (*e > f.data_bytes_)
      return Bad(path, absl::StrCat(what, "data_offsets ", offsets->dump(), " run past the end of the data (",
                                    f.data_bytes_, " bytes)"));
    if (*e - *b != nbytes)
      return Bad(path, absl::StrCat(what, "data_offsets ", offsets->dump(), " hold ", *e - *b, " bytes but ",
                                    SafetensorsDTypeName(info.dtype), info.shape.ToString(), " needs ", nbytes));
    info.begin = *b;
    info.end = *e;
    f.index_[name] = f.infos_.size();
    f.names_.push_back(name);
    f.infos_.push_back(std::move(info));
  }

  // The format forbids tensors sharing bytes.
  std::vector<const SafetensorsTensorInfo*> by_offset;
  for (const SafetensorsTensorInfo& info : f.infos_)
    if (info.end > info.begin) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const SafetensorsTensorInfo &a = *by_offset[i - 1], &b = *by_offset[i];
    if (b.begin < a.end)
      return Bad(path, absl::StrCat("tensors ", Quote(a.name), " [", a.begin, ", ", a.end, ") and ", Quote(b.name),
                                    " [", b.begin, ", ", b.end, ") overlap"));
  }
  return f;
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

StatusOr<const SafetensorsTensorInfo*> SafetensorsFile::Find(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end())
    return absl::NotFoundError(absl::StrCat("safetensors '", path_, "'", ": no tensor ", Quote(name)));
  return &infos_[it->second];
}

StatusOr<SafetensorsTensorInfo> SafetensorsFile::Info(const std::string& name) const {
  CF_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, Find(name));
  return *info;
}

const uint8_t* SafetensorsFile::DataOf(const SafetensorsTensorInfo& info) const {
  return mapping_->bytes() + data_start_ + info.begin;
}

StatusOr<absl::Span<const uint8_t>> SafetensorsFile::Bytes(const std::string& name) const {
  CF_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, Find(name));
  return absl::Span<const uint8_t>(DataOf(*info), static_cast<size_t>(info->nbytes()));
}

StatusOr<Tensor> SafetensorsFile::Read(const std::string& name) const {
  CF_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, Find(name));
  if (info->shape.rank() > Shape::kMaxRank)
    return Bad(path_, absl::StrCat("tensor ", Quote(name), ": rank ", info->shape.rank(), " exceeds the runtime's ",
                                   Shape::kMaxRank));
  CF_ASSIGN_OR_RETURN(Tensor t, Tensor::Empty(info->shape, SafetensorsReadDType(info->dtype)));
  const uint8_t* src = DataOf(*info);
  const int64_t n = info->numel();
  switch (info->dtype) {
    case SafetensorsDType::kBool:
      for (int64_t i = 0; i < n; ++i) t.data<bool>()[i] = src[i] != 0;
      break;
    case SafetensorsDType::kI8:
      for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = LoadLE<int8_t>(src, i);
      break;
    case SafetensorsDType::kI16:
      for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = LoadLE<int16_t>(src, i);
      break;
    case SafetensorsDType::kU16:
      for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = LoadLE<uint16_t>(src, i);
      break;
    case SafetensorsDType::kU32:
      for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = LoadLE<uint32_t>(src, i);
      break;
    case SafetensorsDType::kU64:
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t v = LoadLE<uint64_t>(src, i);
        if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          return Bad(path_, absl::StrCat("tensor ", Quote(name), ": U64 element ", i, " = ", v,
                                         " does not fit the runtime's i64"));
        t.data<int64_t>()[i] = static_cast<int64_t>(v);
      }
      break;
    case SafetensorsDType::kF8E4M3:
      for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = F8E4M3ToF32(src[i]);
      break;
    case SafetensorsDType::kF8E5M2:
      for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = F8E5M2ToF32(src[i]);
      break;
    default:  // the runtime's own dtypes: the bytes as they are
      if (t.nbytes() > 0) std::memcpy(t.raw(), src, static_cast<size_t>(t.nbytes()));
      break;
  }
  return t;
}

StatusOr<Tensor> SafetensorsFile::View(const std::string& name) const {
  CF_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, Find(name));
  const std::string what = absl::StrCat("tensor ", Quote(name), ": ");
  switch (info->dtype) {
    case SafetensorsDType::kF32: case SafetensorsDType::kF16: case SafetensorsDType::kBF16:
    case SafetensorsDType::kF64: case SafetensorsDType::kI32: case SafetensorsDType::kI64:
    case SafetensorsDType::kU8:
      break;
    default:
      return Bad(path_, absl::StrCat(what, "no zero-copy view of ", SafetensorsDTypeName(info->dtype),
                                     " (use Read, which converts)"));
  }
  if (info->shape.rank() > Shape::kMaxRank)
    return Bad(path_, absl::StrCat(what, "rank ", info->shape.rank(), " exceeds the runtime's ", Shape::kMaxRank));
  const uint8_t* p = DataOf(*info);
  const int64_t esize = SafetensorsDTypeSize(info->dtype);
  if (reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(esize) != 0)
    return Bad(path_, absl::StrCat(what, "its bytes at file offset ", data_start_ + info->begin,
                                   " are not aligned to its ", esize, "-byte elements (use Read)"));
  auto storage = Storage::Borrow(Device::CPU(), const_cast<uint8_t*>(p), info->nbytes());
  return Tensor(std::move(storage), 0, info->shape, SafetensorsReadDType(info->dtype));
}

// ---- Writing --------------------------------------------------------------------

Status WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  const std::string where = absl::StrCat("cannot write '", path, "': ");
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) return absl::InvalidArgumentError(where + "a tensor name is empty");
    if (name == kMetadataKey) return absl::InvalidArgumentError(where + "a tensor cannot be named __metadata__");
    if (!seen.insert(name).second) return absl::InvalidArgumentError(absl::StrCat(where, "tensor ", Quote(name), " appears twice"));
    if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat(where, "tensor ", Quote(name), " is undefined"));
  }
  // Largest elements first: with the 8-aligned buffer start every tensor is
  // then aligned to its element size (what the reference does).
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return DTypeSize(tensors[a].second.dtype()) > DTypeSize(tensors[b].second.dtype());
  });

  Json header = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header[kMetadataKey] = std::move(m);
  }
  int64_t offset = 0;
  for (size_t i : order) {
    const auto& [name, t] = tensors[i];
    Json shape = Json::array();
    for (int64_t d : t.shape().dims()) shape.push_back(d);
    header[name] = Json{{"dtype", SafetensorsDTypeName(SafetensorsDTypeOf(t.dtype()))},
                        {"shape", std::move(shape)},
                        {"data_offsets", Json::array({offset, offset + t.nbytes()})}};
    offset += t.nbytes();
  }
  std::string text;
  try {
    text = header.dump();  // compact; strict: a name that is not UTF-8 throws
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, "a tensor name or metadata string is not UTF-8: ", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  AtomicFile out;
  CF_RETURN_IF_ERROR(out.Open(path));
  CF_RETURN_IF_ERROR(out.Write(len, 8));
  CF_RETURN_IF_ERROR(out.Write(text.data(), static_cast<int64_t>(text.size())));
  for (size_t i : order) {
    const Tensor& t = tensors[i].second;
    if (t.nbytes() == 0) continue;
    if (t.device().is_cpu()) {
      CF_RETURN_IF_ERROR(out.Write(t.raw(), t.nbytes()));
    } else {
      CF_ASSIGN_OR_RETURN(Tensor host, t.To(Device::CPU()));
      CF_RETURN_IF_ERROR(out.Write(host.raw(), host.nbytes()));
    }
  }
  return out.Commit();
}

}  // namespace cf
