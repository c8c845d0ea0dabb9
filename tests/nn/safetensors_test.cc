// nn/safetensors: round trips of every dtype (empty tensors, 0-d scalars,
// metadata), a file written by the Python `safetensors` package
// (tests/data/safetensors, made by tools/make_safetensors_testdata.py), and
// hostile or truncated files, each an error naming the file, the tensor and
// what is wrong.
#include "nn/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include "gtest/gtest.h"
#include "runtime/device.h"
#include "tests/support/process.h"

namespace cf {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;
std::string ReadAll(const std::string& path) { return testing::ReadAll(path); }
void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string LengthPrefix(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}
// A file from a header text and a data buffer; `n` overrides the header length.
std::string Raw(const std::string& header, const std::string& data = "", std::optional<uint64_t> n = std::nullopt) {
  return LengthPrefix(n.value_or(header.size())) + header + data;
}

std::string Bytes(const Tensor& t) { return std::string(static_cast<const char*>(t.raw()), static_cast<size_t>(t.nbytes())); }

// Random contents of every dtype (bit patterns for the floating ones, so NaN
// payloads and subnormals round-trip too; 0/1 for booleans).
Tensor RandomBytes(const Shape& shape, DType dtype, uint64_t seed) {
  Tensor t = Tensor::Empty(shape, dtype).value();
  std::mt19937_64 rng(seed);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (int64_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(dtype == DType::boolean ? rng() & 1 : rng());
  return t;
}

constexpr DType kAllDTypes[] = {DType::f32, DType::f16, DType::bf16, DType::f64,
                                DType::i32, DType::i64, DType::u8,   DType::boolean};

TEST(Safetensors, RoundTripsEveryDTypeWithScalarsEmptiesAndMetadata) {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint64_t seed = 1;
  for (DType t : kAllDTypes) {
    const std::string n = DTypeName(t);
    tensors.push_back({n + ".matrix", RandomBytes(Shape{3, 5}, t, seed++)});
    tensors.push_back({n + ".odd", RandomBytes(Shape{7}, t, seed++)});  // breaks alignment unless sorted
    tensors.push_back({n + ".scalar", RandomBytes(Shape{}, t, seed++)});
    tensors.push_back({n + ".empty", RandomBytes(Shape{2, 0, 5}, t, seed++)});
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "quotes \" and \\ and ü"}};
  const std::string path = dir / "all.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors, metadata).ok());
  EXPECT_EQ(dir.Entries(), std::vector<std::string>{"all.safetensors"});  // no temporary left

  // The header: length a multiple of 8, padded with spaces, data 8-aligned.
  const std::string file = ReadAll(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(file[8], '{');
  const size_t close = file.rfind('}', 8 + n);
  for (size_t i = close + 1; i < 8 + n; ++i) EXPECT_EQ(file[i], ' ');

  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->metadata(), metadata);
  EXPECT_EQ(f->names().size(), tensors.size());
  EXPECT_EQ(f->data_start(), static_cast<int64_t>(8 + n));
  int64_t total = 0;
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    total += t.nbytes();
    auto info = f->Info(name);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->dtype, SafetensorsDTypeOf(t.dtype()));
    EXPECT_EQ(info->shape, t.shape());
    EXPECT_EQ(info->begin % DTypeSize(t.dtype()), 0) << "not aligned to its element size";
    auto read = f->Read(name);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->dtype(), t.dtype());
    EXPECT_EQ(read->shape(), t.shape());
    EXPECT_EQ(Bytes(*read), Bytes(t));
    auto bytes = f->Bytes(name);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size()), Bytes(t));
    if (t.dtype() != DType::boolean) {
      auto view = f->View(name);
      ASSERT_TRUE(view.ok()) << view.status();
      EXPECT_EQ(view->dtype(), t.dtype());
      EXPECT_EQ(view->shape(), t.shape());
      EXPECT_EQ(Bytes(*view), Bytes(t));
    }
  }
  EXPECT_EQ(f->data_bytes(), total);  // packed: no gaps
  // Header order: largest elements first, the caller's order within a size.
  EXPECT_EQ(f->names().front(), "f64.matrix");
  EXPECT_EQ(f->names().back(), "bool.empty");
}

TEST(Safetensors, WritesCudaTensorsAndOverwritesAtomically) {
  TempDir dir;
  const std::string path = dir / "x.safetensors";
  WriteAll(path, "old contents");
  const Tensor a = RandomBytes(Shape{4, 4}, DType::f32, 7);
  ASSERT_TRUE(WriteSafetensors(path, {{"a", a}}).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(Bytes(f->Read("a").value()), Bytes(a));
  EXPECT_TRUE(f->metadata().empty());
  if (CudaDeviceCount() > 0) {
    const Tensor d = a.To(Device::CUDA()).value();
    ASSERT_TRUE(WriteSafetensors(dir / "d.safetensors", {{"a", d}}).ok());
    EXPECT_EQ(Bytes(SafetensorsFile::Open(dir / "d.safetensors")->Read("a").value()), Bytes(a));
  }
}

TEST(Safetensors, WriterRefusesBadNamesAndPathsAndLeavesNothing) {
  TempDir dir;
  const std::string path = dir / "keep.safetensors";
  WriteAll(path, "keep me");
  const Tensor t = RandomBytes(Shape{2}, DType::f32, 3);
  struct Case {
    std::vector<std::pair<std::string, Tensor>> tensors;
    std::map<std::string, std::string> metadata;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {{{"a", t}, {"a", t}}, {}, "'a' appears twice"},
      {{{"", t}}, {}, "name is empty"},
      {{{"__metadata__", t}}, {}, "__metadata__"},
      {{{"u", Tensor()}}, {}, "'u' is undefined"},
      {{{"bad\xff", t}}, {}, "not UTF-8"},
      {{{"a", t}}, {{"k", "\xc3"}}, "not UTF-8"},
  };
  for (const Case& c : cases) {
    const Status s = WriteSafetensors(path, c.tensors, c.metadata);
    EXPECT_FALSE(s.ok()) << c.mentions;
    EXPECT_NE(s.message().find(c.mentions), std::string::npos) << s;
    EXPECT_NE(s.message().find("keep.safetensors"), std::string::npos) << s;
  }
  EXPECT_EQ(ReadAll(path), "keep me");
  for (const std::string& p : {dir / "", dir / "missing/x.safetensors", std::string()}) {
    const Status s = WriteSafetensors(p, {{"a", t}});
    EXPECT_FALSE(s.ok()) << p;
  }
  fs::create_directory(dir / "sub");
  const Status s = WriteSafetensors(dir / "sub", {{"a", t}});
  EXPECT_NE(s.message().find("is a directory"), std::string::npos) << s;
  EXPECT_EQ(dir.Entries(), (std::vector<std::string>{"keep.safetensors", "sub"}));
}

// Written by tools/make_safetensors_testdata.py with safetensors 0.8.0 and torch 2.15.
TEST(Safetensors, ReadsTheReferenceImplementationsFile) {
  const std::string path = std::string(CF_SOURCE_DIR) + "/tests/data/safetensors/python_reference.safetensors";
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->metadata(), (std::map<std::string, std::string>{{"format", "pt"},
                                                              {"made_by", "tools/make_safetensors_testdata.py"}}));
  EXPECT_EQ(f->names().size(), 17u);
  auto doubles = [&](const std::string& name, DType dtype, const Shape& shape) {
    auto t = f->Read(name);
    EXPECT_TRUE(t.ok()) << t.status();
    if (!t.ok()) return std::vector<double>{};
    EXPECT_EQ(t->dtype(), dtype) << name;
    EXPECT_EQ(t->shape(), shape) << name;
    return t->ToVector<double>().value();
  };
  auto ints = [&](const std::string& name, DType dtype, const Shape& shape) {
    auto t = f->Read(name);
    EXPECT_TRUE(t.ok()) << t.status();
    if (!t.ok()) return std::vector<int64_t>{};
    EXPECT_EQ(t->dtype(), dtype) << name;
    EXPECT_EQ(t->shape(), shape) << name;
    return t->ToVector<int64_t>().value();
  };
  using D = std::vector<double>;
  using I = std::vector<int64_t>;
  EXPECT_EQ(doubles("f32", DType::f32, {2, 3}), (D{-1, -0.5, 0, 0.5, 1, 1.5}));
  EXPECT_EQ(doubles("f16", DType::f16, {3}), (D{0.5, -2, 65504}));
  EXPECT_EQ(doubles("bf16", DType::bf16, {2, 2}), (D{1, -3, 0.0078125, 256}));
  EXPECT_EQ(doubles("f64", DType::f64, {2}), (D{3.141592653589793, -1e300}));
  EXPECT_EQ(doubles("f8_e4m3", DType::f32, {3}), (D{0.5, -448, std::ldexp(1.0, -9)}));
  EXPECT_EQ(doubles("f8_e5m2", DType::f32, {2}), (D{-57344, 1.5}));
  EXPECT_EQ(doubles("scalar", DType::f32, {}), (D{3.25}));
  EXPECT_EQ(doubles("empty", DType::f32, {0, 4}), D{});
  EXPECT_EQ(ints("i64", DType::i64, {3}), (I{-(int64_t{1} << 62), 3, 0}));
  EXPECT_EQ(ints("i32", DType::i32, {2}), (I{-7, 2147483647}));
  EXPECT_EQ(ints("u8", DType::u8, {3}), (I{0, 255, 7}));
  EXPECT_EQ(ints("bool", DType::boolean, {3}), (I{1, 0, 1}));
  EXPECT_EQ(ints("i8", DType::i32, {2}), (I{-128, 127}));
  EXPECT_EQ(ints("i16", DType::i32, {2}), (I{-32768, 5}));
  EXPECT_EQ(ints("u16", DType::i32, {2}), (I{65535, 1}));
  EXPECT_EQ(ints("u32", DType::i64, {2}), (I{4294967295, 2}));
  EXPECT_EQ(ints("u64", DType::i64, {2}), (I{std::numeric_limits<int64_t>::max(), 9}));
  EXPECT_EQ(f->Info("f8_e4m3")->dtype, SafetensorsDType::kF8E4M3);
  EXPECT_EQ(f->Info("u16")->dtype, SafetensorsDType::kU16);
  // Views of the runtime's dtypes share the mapping.
  auto view = f->View("f32");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->ToVector<double>().value(), (D{-1, -0.5, 0, 0.5, 1, 1.5}));
  EXPECT_EQ(view->raw(), static_cast<const void*>(f->Bytes("f32")->data()));
  EXPECT_FALSE(f->View("u16").ok());
  EXPECT_FALSE(f->View("bool").ok());
}

TEST(Safetensors, EveryE4M3AndE5M2ByteConverts) {
  // All 256 bytes of each f8 format in one file, against the definitions.
  TempDir dir;
  std::string data;
  for (int b = 0; b < 256; ++b) data += static_cast<char>(b);
  const std::string header =
      R"({"e4m3":{"dtype":"F8_E4M3","shape":[256],"data_offsets":[0,256]},)"
      R"("e5m2":{"dtype":"F8_E5M2","shape":[256],"data_offsets":[256,512]}})";
  WriteAll(dir / "f8.safetensors", Raw(header, data + data));
  auto f = SafetensorsFile::Open(dir / "f8.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  const std::vector<double> e4m3 = f->Read("e4m3")->ToVector<double>().value();
  const std::vector<double> e5m2 = f->Read("e5m2")->ToVector<double>().value();
  for (int b = 0; b < 256; ++b) {
    const double sign = (b & 0x80) ? -1 : 1;
    {  // e4m3fn: bias 7, 3 mantissa bits, only S.1111.111 is NaN
      const int e = (b >> 3) & 15, m = b & 7;
      if (e == 15 && m == 7) {
        EXPECT_TRUE(std::isnan(e4m3[b])) << b;
      } else {
        const double want = sign * (e == 0 ? m / 8.0 * std::ldexp(1.0, -6) : (1 + m / 8.0) * std::ldexp(1.0, e - 7));
        EXPECT_EQ(e4m3[b], want) << b;
      }
    }
    {  // e5m2: bias 15, 2 mantissa bits, IEEE infinities and NaNs
      const int e = (b >> 2) & 31, m = b & 3;
      if (e == 31) {
        EXPECT_TRUE(m == 0 ? std::isinf(e5m2[b]) && (e5m2[b] < 0) == (sign < 0) : std::isnan(e5m2[b])) << b;
      } else {
        const double want = sign * (e == 0 ? m / 4.0 * std::ldexp(1.0, -14) : (1 + m / 4.0) * std::ldexp(1.0, e - 15));
        EXPECT_EQ(e5m2[b], want) << b;
      }
    }
  }
}

TEST(Safetensors, ReadConversionsAndViewsThatAreRefused) {
  TempDir dir;
  std::string data;
  data += std::string("\x02\x00\x01", 3);                          // BOOL [3] at 0: 2 is true
  data += std::string("\x00\x00\x80\x3f", 4);                      // F32 [1] at 3: 1.0, unaligned
  data += std::string("\x00\x00\x00\x00\x00\x00\x00\x80", 8);      // U64 [1] at 7: 2^63
  data += std::string(4, '\0');                                    // F32 rank 9 at 15
  const std::string header =
      R"({"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]},)"
      R"("f":{"dtype":"F32","shape":[1],"data_offsets":[3,7]},)"
      R"("big":{"dtype":"U64","shape":[1],"data_offsets":[7,15]},)"
      R"("deep":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[15,19]}})";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  const std::string path = dir / "conv.safetensors";
  WriteAll(path, Raw(padded, data));
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Read("b")->ToVector<int64_t>().value(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(f->Read("f")->ToVector<double>().value(), std::vector<double>{1.0});
  // The buffer starts 8-aligned (the header is padded), so offset 3 is not 4-aligned.
  ASSERT_EQ(f->data_start() % 8, 0);
  const Status unaligned = f->View("f").status();
  EXPECT_NE(unaligned.message().find("not aligned"), std::string::npos) << unaligned;
  const Status big = f->Read("big").status();
  EXPECT_NE(big.message().find("'big': U64 element 0 = 9223372036854775808"), std::string::npos) << big;
  const Status deep = f->Read("deep").status();
  EXPECT_NE(deep.message().find("'deep': rank 9"), std::string::npos) << deep;
  const Status missing = f->Read("nope").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("no tensor 'nope'"), std::string::npos) << missing;
  EXPECT_NE(missing.message().find("conv.safetensors"), std::string::npos) << missing;
  EXPECT_FALSE(f->contains("nope"));
  EXPECT_TRUE(f->contains("deep"));
}

TEST(Safetensors, GapsAndZeroSizedTensorsAnywhereAreAllowed) {
  TempDir dir;
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
      R"("z":{"dtype":"F32","shape":[0],"data_offsets":[10,10]},)"
      R"("y":{"dtype":"I64","shape":[3,0],"data_offsets":[16,16]}})";
  WriteAll(dir / "gap.safetensors", Raw(header, std::string(8, 'x') + std::string("\x00\x00\x00\x40", 4) + "tail"));
  auto f = SafetensorsFile::Open(dir / "gap.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->names(), (std::vector<std::string>{"a", "z", "y"}));  // the header's order
  EXPECT_EQ(f->Read("a")->ToVector<double>().value(), std::vector<double>{2.0});
  EXPECT_EQ(f->Read("y")->shape(), (Shape{3, 0}));
}

struct HostileCase {
  std::string what;
  std::string file;
  std::string mentions;  // besides the file's name
};

TEST(Safetensors, HostileFilesAreErrorsNamingFileTensorAndProblem) {
  TempDir dir;
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})";
  const std::string data24(24, '\0');
  const std::vector<HostileCase> cases = {
      {"empty file", "", "truncated: 0 bytes"},
      {"short length", std::string("\x10\x00\x00", 3), "truncated: 3 bytes"},
      {"huge N", Raw("{}", "", uint64_t{1} << 40), "header length 1099511627776 exceeds the limit"},
      {"N past the end", Raw("{}", "", 1000), "header length 1000 runs past the end of the file (10 bytes)"},
      {"N = 2^64-1", Raw("{}", "", ~uint64_t{0}), "exceeds the limit"},
      {"empty header", Raw("", data24), "not valid JSON"},
      {"bad JSON", Raw(R"({"t": {"dtype": )"), "not valid JSON"},
      {"trailing garbage", Raw(R"({} x)"), "not valid JSON"},
      {"NUL in header", Raw(std::string("{\"a\0\":1}", 8)), "not valid JSON"},
      {"invalid UTF-8", Raw("{\"\xff\":{}}"), "not valid JSON"},
      {"not an object", Raw("[1, 2]"), "not a JSON object"},
      {"entry not an object", Raw(R"({"t": 5})"), "'t': the entry is not an object"},
      {"unknown dtype", Raw(R"({"t":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}})", "x"),
       "'t': unknown safetensors dtype 'F7'"},
      {"no dtype", Raw(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", "xxxx"), "'t': no dtype"},
      {"dtype not a string", Raw(R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "xxxx"), "'t': no dtype"},
      {"no shape", Raw(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", "xxxx"), "'t': no shape"},
      {"negative dim", Raw(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "xxxx"),
       "'t': shape entry -1 is not a non-negative integer"},
      {"fractional dim", Raw(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,4]}})", "xxxx"),
       "'t': shape entry 2.5"},
      {"dim past int64", Raw(R"({"t":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}})", "xxxx"),
       "'t': shape entry 9223372036854775808"},
      {"overflowing shape", Raw(R"({"t":{"dtype":"F32","shape":[1099511627776,1099511627776,0],"data_offsets":[0,0]}})"),
       "'t': the byte size of shape [1099511627776,1099511627776,0] overflows"},
      {"overflow by the element size", Raw(R"({"t":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})"),
       "overflows"},
      {"no offsets", Raw(R"({"t":{"dtype":"F32","shape":[1]}})", "xxxx"), "'t': data_offsets is not a pair"},
      {"three offsets", Raw(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "xxxxxxxx"),
       "'t': data_offsets is not a pair"},
      {"negative offset", Raw(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", "xxxx"),
       "'t': data_offsets [-4,0] are not non-negative integers"},
      {"offset past uint64", Raw(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}})"),
       "'t': data_offsets"},
      {"end before begin", Raw(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", "xxxx"),
       "'t': data_offsets [4,0] end before they begin"},
      {"past the data", Raw("{" + ok_entry + "}", std::string(20, '\0')),
       "'t': data_offsets [0,24] run past the end of the data (20 bytes)"},
      {"past the data (huge)", Raw(R"({"t":{"dtype":"U8","shape":[4611686018427387904],"data_offsets":[0,4611686018427387904]}})"),
       "'t': data_offsets [0,4611686018427387904] run past the end of the data (0 bytes)"},
      {"wrong byte count", Raw(R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", data24),
       "'t': data_offsets [0,20] hold 20 bytes but F32[2, 3] needs 24"},
      {"overlap", Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data24),
       "tensors 'a' [0, 8) and 'b' [4, 12) overlap"},
      {"same bytes twice", Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", data24),
       "overlap"},
      {"duplicate name", Raw("{" + ok_entry + "," + ok_entry + "}", data24), "tensor 't' appears twice"},
      {"duplicate key in an entry",
       Raw(R"({"t":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})", "xxxx"), "'dtype' appears twice"},
      {"deep nesting", Raw(R"({"t":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})", "xxxx"), "nests deeper than 3"},
      {"nesting bomb", Raw("{\"t\":" + std::string(100000, '[') + std::string(100000, ']') + "}"), "nests deeper"},
      {"metadata not an object", Raw(R"({"__metadata__":[1]})"), "__metadata__ is not an object"},
      {"metadata value not a string", Raw(R"({"__metadata__":{"k":1}})"), "__metadata__ 'k' is not a string"},
      {"control characters in a name are escaped", Raw("{\"a\\nb\":5}"), "'a\\x0ab': the entry"},
  };
  for (const HostileCase& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string path = dir / "hostile.safetensors";
    WriteAll(path, c.file);
    auto f = SafetensorsFile::Open(path);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
    EXPECT_NE(f.status().message().find(c.mentions), std::string::npos) << f.status();
    EXPECT_NE(f.status().message().find("hostile.safetensors"), std::string::npos) << f.status();
  }
  // A long hostile name is shortened in messages.
  const std::string long_name(5000, 'n');
  WriteAll(dir / "long.safetensors", Raw("{\"" + long_name + "\":1}"));
  const Status s = SafetensorsFile::Open(dir / "long.safetensors").status();
  EXPECT_LT(s.message().size(), 400u) << s;
  EXPECT_NE(s.message().find("(5000 bytes)"), std::string::npos) << s;

  EXPECT_EQ(SafetensorsFile::Open(dir / "missing.safetensors").status().code(), absl::StatusCode::kNotFound);
  fs::create_directory(dir / "adir");
  const Status d = SafetensorsFile::Open(dir / "adir").status();
  EXPECT_NE(d.message().find("not a regular file"), std::string::npos) << d;
}

TEST(Safetensors, EveryTruncationOfAValidFileIsAnError) {
  TempDir dir;
  const std::string good = dir / "good.safetensors";
  ASSERT_TRUE(WriteSafetensors(good, {{"w", RandomBytes(Shape{3, 4}, DType::f32, 1)},
                                      {"b", RandomBytes(Shape{5}, DType::bf16, 2)}}, {{"k", "v"}})
                  .ok());
  const std::string bytes = ReadAll(good);
  ASSERT_TRUE(SafetensorsFile::Open(good).ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string path = dir / "cut.safetensors";
    WriteAll(path, bytes.substr(0, n));
    auto f = SafetensorsFile::Open(path);
    EXPECT_FALSE(f.ok()) << "a file cut to " << n << " of " << bytes.size() << " bytes opened";
  }
}

TEST(Safetensors, CorruptedHeadersNeverCrashOrReadOutOfBounds) {
  // Random byte changes in the header and its length: Open either refuses the
  // file or every tensor it lists reads within the file.
  TempDir dir;
  const std::string good = dir / "good.safetensors";
  ASSERT_TRUE(WriteSafetensors(good, {{"weight", RandomBytes(Shape{3, 4}, DType::f32, 1)},
                                      {"idx", RandomBytes(Shape{2}, DType::i64, 2)},
                                      {"flag", RandomBytes(Shape{3}, DType::boolean, 3)}})
                  .ok());
  const std::string bytes = ReadAll(good);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  std::mt19937_64 rng(5);
  const char alphabet[] = "0123456789[]{},:\"- FIBU8_e";
  int opened = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string mutated = bytes;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % (8 + n);
      mutated[at] = (rng() % 2) ? alphabet[rng() % (sizeof(alphabet) - 1)] : static_cast<char>(rng());
    }
    const std::string path = dir / "fuzz.safetensors";
    WriteAll(path, mutated);
    auto f = SafetensorsFile::Open(path);
    if (!f.ok()) continue;
    ++opened;
    int64_t end = 0;
    for (const std::string& name : f->names()) {
      const SafetensorsTensorInfo info = f->Info(name).value();
      end = std::max(end, info.end);
      (void)f->Read(name);  // may refuse (rank, U64 range), must not crash
    }
    EXPECT_LE(f->data_start() + end, static_cast<int64_t>(mutated.size()));
  }
  EXPECT_GT(opened, 0);  // some edits (inside numbers or names) keep the file valid
}

}  // namespace
}  // namespace cf
