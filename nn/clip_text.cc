// Unicode and text cleaning for the CLIP tokenizer (see nn/clip_text.h).
#include "nn/clip_text.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace cf::clip {
namespace {

struct CodepointRange {
  char32_t lo, hi;
};
struct CodepointMapping {
  char32_t cp;
  char32_t to[4];  // zero-terminated when shorter
};
struct CombiningClassRange {
  char32_t lo, hi;
  int ccc;
};
struct CompositionPair {
  char32_t first, second, composed;
};
struct HtmlEntity {
  const char* name;
  const char* utf8;
};

#include "nn/tokenizer_tables.inc"

template <size_t N>
bool InRanges(const CodepointRange (&table)[N], char32_t c) {
  const CodepointRange* it =
      std::upper_bound(table, table + N, c, [](char32_t v, const CodepointRange& r) { return v < r.lo; });
  return it != table && c <= (it - 1)->hi;
}

template <size_t N>
const CodepointMapping* FindMapping(const CodepointMapping (&table)[N], char32_t c) {
  const CodepointMapping* it =
      std::lower_bound(table, table + N, c, [](const CodepointMapping& m, char32_t v) { return m.cp < v; });
  return it != table + N && it->cp == c ? it : nullptr;
}

void AppendMapping(const CodepointMapping& m, std::u32string* out) {
  for (char32_t t : m.to) {
    if (t == 0) break;
    out->push_back(t);
  }
}

template <size_t N>
const char* FindEntity(const HtmlEntity (&table)[N], std::string_view name) {
  const HtmlEntity* it = std::lower_bound(table, table + N, name,
                                          [](const HtmlEntity& e, std::string_view v) { return e.name < v; });
  return it != table + N && it->name == name ? it->utf8 : nullptr;
}

// The entity value as code points (the table holds valid UTF-8).
std::u32string EntityValue(const char* utf8) { return DecodeUtf8(utf8).value(); }

int CombiningClass(char32_t c) {
  const CombiningClassRange* end = kCombiningClasses + std::size(kCombiningClasses);
  const CombiningClassRange* it =
      std::upper_bound(kCombiningClasses, end, c, [](char32_t v, const CombiningClassRange& r) { return v < r.lo; });
  return it != kCombiningClasses && c <= (it - 1)->hi ? (it - 1)->ccc : 0;
}

bool IsCased(char32_t c) { return InRanges(kCasedRanges, c); }
bool IsCaseIgnorable(char32_t c) { return InRanges(kCaseIgnorableRanges, c); }

// Hangul syllables (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const CompositionPair* end = kCompositions + std::size(kCompositions);
  const CompositionPair* it = std::lower_bound(kCompositions, end, std::pair(a, b), [](const CompositionPair& p, auto v) {
    return p.first < v.first || (p.first == v.first && p.second < v.second);
  });
  return it != end && it->first == a && it->second == b ? it->composed : 0;
}

// U+0080..U+009F read as Windows-1252, undefined bytes kept (HTML5's
// character-reference rule and ftfy's "sloppy-windows-1252").
constexpr char32_t kC1[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
                              0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
                              0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

// Python's html._replace_charref for a numeric reference (digits without
// the '#', base 10 or 16).
std::u32string NumericCharref(std::u32string_view digits, int base) {
  uint64_t num = 0;
  for (char32_t d : digits) {
    const int v = d <= '9' ? d - '0' : (d | 0x20) - 'a' + 10;
    num = std::min<uint64_t>(num * base + v, 0x7FFFFFFF);  // saturates past U+10FFFF: still "too large"
  }
  // HTML5's replacements for 0x00, CR and the C1 range.
  if (num == 0) return U"\uFFFD";
  if (num == 0x0D) return U"\r";
  if (num >= 0x80 && num <= 0x9F) return std::u32string(1, kC1[num - 0x80]);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U"\uFFFD";
  const bool invalid = (num >= 0x1 && num <= 0x8) || (num >= 0xE && num <= 0x1F) || (num >= 0x7F && num <= 0x9F) ||
                       (num >= 0xFDD0 && num <= 0xFDEF) || num == 0xB || (num & 0xFFFE) == 0xFFFE;
  if (invalid) return U"";
  return std::u32string(1, static_cast<char32_t>(num));
}

bool IsAsciiDigit(char32_t c) { return c >= '0' && c <= '9'; }
bool IsAsciiHex(char32_t c) { return IsAsciiDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
bool IsAsciiAlnum(char32_t c) { return IsAsciiDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

// The ASCII text of `s`, or "" when it has other code points.
std::string AsciiOf(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) {
    if (c >= 0x80) return "";
    out.push_back(static_cast<char>(c));
  }
  return out;
}

// ftfy.fixes.unescape_html: "&name;" and "&#...;" references only.
std::u32string FtfyUnescape(std::u32string_view text) {
  std::u32string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '&') {
      size_t j = i + 1;
      if (j < text.size() && text[j] == '#') ++j;
      size_t k = j;
      while (k < text.size() && k - j < 25 && IsAsciiAlnum(text[k])) ++k;
      if (k > j && k - j <= 24 && k < text.size() && text[k] == ';') {
        const std::u32string_view ref = text.substr(i, k + 1 - i);  // "&...;"
        const std::string name = AsciiOf(ref.substr(1));
        const char* v = FindEntity(kHtml5Entities, name);
        if (v == nullptr) v = FindEntity(kFtfyUppercaseEntities, name);
        if (v != nullptr) {
          out += EntityValue(v);
        } else if (ref[1] == '#') {
          const std::u32string u = HtmlUnescape(ref);
          out += u.find(U';') == std::u32string::npos ? u : std::u32string(ref);
        } else {
          out += ref;
        }
        i = k + 1;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

// ftfy's remove_control_chars set.
bool IsFtfyControl(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// One pass of ftfy's fixers after unescape_html (fix_encoding not done).
std::u32string FtfyFixers(std::u32string_view in) {
  // (ligature, expansion): ftfy.chardata.LIGATURES.
  static constexpr std::pair<char32_t, const char32_t*> kLigatures[] = {
      {0x0132, U"IJ"}, {0x0133, U"ij"}, {0x0149, U"\u02BCn"}, {0x01C4, U"D\u017D"}, {0x01C5, U"D\u017E"},
      {0x01C6, U"d\u017E"}, {0x01C7, U"LJ"}, {0x01C8, U"Lj"}, {0x01C9, U"lj"}, {0x01CA, U"NJ"}, {0x01CB, U"Nj"},
      {0x01CC, U"nj"}, {0x01F1, U"DZ"}, {0x01F2, U"Dz"}, {0x01F3, U"dz"}, {0xFB00, U"ff"}, {0xFB01, U"fi"},
      {0xFB02, U"fl"}, {0xFB03, U"ffi"}, {0xFB04, U"ffl"}, {0xFB05, U"\u017Ft"}, {0xFB06, U"st"}};
  std::u32string s;
  // fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes:
  // one code point to a string each, applied in that order.
  for (char32_t c : in) {
    if (c >= 0x80 && c <= 0x9F) c = kC1[c - 0x80];
    const auto* lig = std::find_if(std::begin(kLigatures), std::end(kLigatures),
                                   [c](const auto& l) { return l.first == c; });
    std::u32string piece = lig != std::end(kLigatures) ? std::u32string(lig->second) : std::u32string(1, c);
    std::u32string widened;
    for (char32_t p : piece) {
      if (const CodepointMapping* m = FindMapping(kWidthMap, p)) {
        AppendMapping(*m, &widened);
      } else {
        widened.push_back(p);
      }
    }
    for (char32_t& p : widened) {
      if (p == 0x02BC || (p >= 0x2018 && p <= 0x201B)) p = '\'';
      if (p >= 0x201C && p <= 0x201F) p = '"';
    }
    s += widened;
  }
  // fix_line_breaks.
  std::u32string t;
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;  // "\r\n" -> "\n" (the '\n' follows)
    t.push_back(c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? U'\n' : c);
  }
  // remove_terminal_escapes: ESC '[' (\d|;)* [a-zA-Z].
  std::u32string u;
  for (size_t i = 0; i < t.size();) {
    if (t[i] == 0x1B && i + 1 < t.size() && t[i + 1] == '[') {
      size_t j = i + 2;
      while (j < t.size() && (IsDecimal(t[j]) || t[j] == ';')) ++j;
      if (j < t.size() && ((t[j] | 0x20) >= 'a' && (t[j] | 0x20) <= 'z')) {
        i = j + 1;
        continue;
      }
    }
    u.push_back(t[i++]);
  }
  // remove_control_chars.
  std::u32string v;
  for (char32_t c : u)
    if (!IsFtfyControl(c)) v.push_back(c);
  return Nfc(v);
}

}  // namespace

StatusOr<std::u32string> DecodeUtf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char b = p[i];
    int len = 0;
    char32_t c = 0, min = 0;
    if (b < 0x80) {
      len = 1, c = b;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, c = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, c = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, c = b & 0x07, min = 0x10000;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8: byte 0x", absl::Hex(b), " at offset ", i));
    }
    if (i + len > n)
      return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8: truncated sequence at offset ", i));
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80)
        return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8: bad continuation byte at offset ", i + k));
      c = (c << 6) | (p[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      return absl::InvalidArgumentError(
          absl::StrCat("invalid UTF-8: overlong form, surrogate or code point past U+10FFFF at offset ", i));
    out.push_back(c);
    i += len;
  }
  return out;
}

std::string EncodeUtf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

bool IsLetter(char32_t c) { return InRanges(kLetterRanges, c); }
bool IsNumber(char32_t c) { return InRanges(kNumberRanges, c); }
bool IsDecimal(char32_t c) { return InRanges(kDecimalRanges, c); }

bool IsWhiteSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool IsPythonSpace(char32_t c) { return IsWhiteSpace(c) || (c >= 0x1C && c <= 0x1F); }

std::u32string LowercaseChars(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (const CodepointMapping* m = FindMapping(kLowercase, c)) {
      AppendMapping(*m, &out);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string PythonLower(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != 0x3A3) {
      out += LowercaseChars(text.substr(i, 1));
      continue;
    }
    // Final sigma (CPython's handle_capital_sigma): a cased letter before it
    // (case-ignorable ones skipped) and none after it.
    size_t j = i;
    while (j > 0 && IsCaseIgnorable(text[j - 1])) --j;
    bool final_sigma = j > 0 && IsCased(text[j - 1]);
    if (final_sigma) {
      size_t k = i + 1;
      while (k < text.size() && IsCaseIgnorable(text[k])) ++k;
      final_sigma = k == text.size() || !IsCased(text[k]);
    }
    out.push_back(final_sigma ? 0x3C2 : 0x3C3);
  }
  return out;
}

std::u32string Nfc(std::u32string_view text) {
  // Full canonical decomposition.
  std::u32string d;
  d.reserve(text.size());
  for (char32_t c : text) {
    if (c >= kSBase && c < kSBase + kSCount) {
      const char32_t s = c - kSBase;
      d.push_back(kLBase + s / kNCount);
      d.push_back(kVBase + (s % kNCount) / kTCount);
      if (s % kTCount != 0) d.push_back(kTBase + s % kTCount);
    } else if (const CodepointMapping* m = FindMapping(kDecompositions, c)) {
      AppendMapping(*m, &d);
    } else {
      d.push_back(c);
    }
  }
  // Canonical ordering: each run of non-starters sorted by class, stably.
  for (size_t i = 0; i < d.size();) {
    if (CombiningClass(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && CombiningClass(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](char32_t a, char32_t b) { return CombiningClass(a) < CombiningClass(b); });
    i = j;
  }
  // Canonical composition: a character joins the last starter unless a
  // character between them blocks it (class 0, or a class >= its own).
  std::u32string out;
  out.reserve(d.size());
  size_t starter = std::u32string::npos;
  int last_ccc = 0;
  for (char32_t c : d) {
    const int ccc = CombiningClass(c);
    if (starter != std::u32string::npos) {
      const bool adjacent = starter + 1 == out.size();
      if (adjacent || last_ccc < ccc) {
        if (const char32_t composed = Compose(out[starter], c)) {
          out[starter] = composed;
          continue;
        }
      }
    }
    if (ccc == 0) starter = out.size();
    last_ccc = ccc;
    out.push_back(c);
  }
  return out;
}

std::u32string HtmlUnescape(std::u32string_view text) {
  std::u32string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '&' || i + 1 >= text.size()) {
      out.push_back(text[i++]);
      continue;
    }
    const size_t j = i + 1;
    // &#[0-9]+;?  and  &#[xX][0-9a-fA-F]+;?
    if (text[j] == '#') {
      size_t k = j + 1;
      int base = 10;
      if (k < text.size() && IsAsciiDigit(text[k])) {
        while (k < text.size() && IsAsciiDigit(text[k])) ++k;
      } else if (k + 1 < text.size() && (text[k] == 'x' || text[k] == 'X') && IsAsciiHex(text[k + 1])) {
        base = 16;
        ++k;
        while (k < text.size() && IsAsciiHex(text[k])) ++k;
      } else {
        out.push_back(text[i++]);
        continue;
      }
      const size_t digits_begin = j + (base == 16 ? 2 : 1);
      out += NumericCharref(text.substr(digits_begin, k - digits_begin), base);
      i = k < text.size() && text[k] == ';' ? k + 1 : k;
      continue;
    }
    // &[^\t\n\f <&#;]{1,32};?
    size_t k = j;
    auto allowed = [](char32_t c) {
      return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
    };
    while (k < text.size() && k - j < 32 && allowed(text[k])) ++k;
    if (k == j) {
      out.push_back(text[i++]);
      continue;
    }
    if (k < text.size() && text[k] == ';') ++k;
    const std::u32string_view s = text.substr(j, k - j);
    i = k;
    if (const char* v = FindEntity(kHtml5Entities, AsciiOf(s))) {
      out += EntityValue(v);
      continue;
    }
    bool found = false;
    for (size_t x = s.size() - 1; x > 1; --x) {  // the longest known prefix (legacy names without ';')
      const std::string prefix = AsciiOf(s.substr(0, x));
      if (prefix.empty()) continue;
      if (const char* v = FindEntity(kHtml5Entities, prefix)) {
        out += EntityValue(v);
        out += s.substr(x);
        found = true;
        break;
      }
    }
    if (!found) {
      out.push_back('&');
      out += s;
    }
  }
  return out;
}

std::u32string FtfyFixText(std::u32string_view text) {
  std::u32string out;
  bool unescape = true;  // unescape_html="auto": off from the first line with '<' on
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find(U'\n', pos);
    end = end == std::u32string_view::npos ? text.size() : end + 1;
    std::u32string segment(text.substr(pos, end - pos));
    if (segment.find(U'<') != std::u32string::npos) unescape = false;
    while (true) {
      const std::u32string before = segment;
      if (unescape) segment = FtfyUnescape(segment);
      segment = FtfyFixers(segment);
      if (segment == before) break;
    }
    out += segment;
    pos = end;
  }
  return out;
}

namespace {

// Python's str.split(): the words between runs of str.isspace characters.
std::vector<std::u32string> SplitPythonSpace(std::u32string_view t) {
  std::vector<std::u32string> words;
  for (size_t i = 0; i < t.size();) {
    if (IsPythonSpace(t[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < t.size() && !IsPythonSpace(t[j])) ++j;
    words.emplace_back(t.substr(i, j - i));
    i = j;
  }
  return words;
}

std::u32string JoinWithSpaces(const std::vector<std::u32string>& words) {
  std::u32string out;
  for (const std::u32string& w : words) {
    if (!out.empty()) out.push_back(' ');
    out += w;
  }
  return out;
}

// BERT's _is_chinese_char: the CJK Unified Ideographs blocks.
bool IsCjkIdeograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// General category Zs.
bool IsSpaceSeparator(char32_t c) {
  return c == 0x20 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

}  // namespace

std::u32string BertBasicClean(std::u32string_view text) {
  std::u32string cleaned;
  for (char32_t c : text) {
    const bool tab_or_newline = c == '\t' || c == '\n' || c == '\r';
    if (c == 0 || c == 0xFFFD || (!tab_or_newline && InRanges(kOtherRanges, c))) continue;
    if (tab_or_newline || IsSpaceSeparator(c)) {
      cleaned.push_back(' ');
    } else if (IsCjkIdeograph(c)) {
      cleaned += U" ";
      cleaned.push_back(c);
      cleaned += U" ";
    } else {
      cleaned.push_back(c);
    }
  }
  std::vector<std::u32string> words = SplitPythonSpace(Nfc(cleaned));
  for (std::u32string& w : words) w = PythonLower(w);
  return JoinWithSpaces(words);
}

std::u32string HfFtfyClean(std::u32string_view text) {
  // re.sub(r"\s+", " ", text).strip().lower()
  const std::u32string t = FtfyFixText(text);
  std::u32string spaced;
  for (size_t i = 0; i < t.size(); ++i) {
    if (!IsWhiteSpace(t[i])) {
      spaced.push_back(t[i]);
    } else if (i == 0 || !IsWhiteSpace(t[i - 1])) {
      spaced.push_back(' ');
    }
  }
  size_t b = 0, e = spaced.size();
  while (b < e && IsPythonSpace(spaced[b])) ++b;
  while (e > b && IsPythonSpace(spaced[e - 1])) --e;
  return PythonLower(std::u32string_view(spaced).substr(b, e - b));
}

std::u32string OpenClipClean(std::u32string_view text) {
  // " ".join(t.split()) also trims.
  return PythonLower(JoinWithSpaces(SplitPythonSpace(HtmlUnescape(HtmlUnescape(FtfyFixText(text))))));
}

namespace {

// The contraction at text[i] ('s 't 're 've 'm 'll 'd, first that matches), or 0.
size_t ContractionLength(std::u32string_view text, size_t i, bool ignore_case) {
  if (text[i] != '\'') return 0;
  static constexpr const char32_t* kTails[] = {U"s", U"t", U"re", U"ve", U"m", U"ll", U"d"};
  auto same = [ignore_case](char32_t c, char32_t want) {
    if (c == want) return true;
    if (!ignore_case) return false;
    return (c | 0x20) == want || (want == 's' && c == 0x17F);  // simple case folding of the ASCII letters
  };
  for (const char32_t* tail : kTails) {
    const size_t n = std::char_traits<char32_t>::length(tail);
    if (i + 1 + n > text.size()) continue;
    bool ok = true;
    for (size_t k = 0; k < n && ok; ++k) ok = same(text[i + 1 + k], tail[k]);
    if (ok) return 1 + n;
  }
  return 0;
}

bool StartsWith(std::u32string_view text, size_t i, std::u32string_view s, bool ignore_case) {
  if (i + s.size() > text.size()) return false;
  for (size_t k = 0; k < s.size(); ++k) {
    auto fold = [ignore_case](char32_t c) { return ignore_case && c >= 'A' && c <= 'Z' ? c | 0x20 : c; };
    if (fold(text[i + k]) != fold(s[k])) return false;
  }
  return true;
}

bool IsOther(char32_t c) { return !IsWhiteSpace(c) && !IsLetter(c) && !IsNumber(c); }

}  // namespace

std::vector<std::u32string> ClipSplit(std::u32string_view text, const std::vector<std::u32string>& specials,
                                      bool ignore_case) {
  // Under IGNORECASE the `regex` module lets [^\s\p{L}\p{N}] match no
  // character with a letter among its case variants, and U+0345 (a mark
  // that case-folds to iota) is the only one that is not a letter itself: it
  // matches no alternative, so findall skips it like whitespace.
  auto skipped = [ignore_case](char32_t c) { return IsWhiteSpace(c) || (ignore_case && c == 0x345); };
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < text.size()) {
    const char32_t c = text[i];
    if (skipped(c)) {
      ++i;
      continue;
    }
    size_t len = 0;
    for (const std::u32string& s : specials) {
      if (!s.empty() && StartsWith(text, i, s, ignore_case)) {
        len = s.size();
        break;
      }
    }
    if (len == 0) len = ContractionLength(text, i, ignore_case);
    if (len == 0) {
      size_t j = i + 1;
      if (IsLetter(c)) {
        while (j < text.size() && IsLetter(text[j])) ++j;
      } else if (!IsNumber(c)) {
        while (j < text.size() && IsOther(text[j]) && !skipped(text[j])) ++j;
      }
      len = j - i;
    }
    out.emplace_back(text.substr(i, len));
    i += len;
  }
  return out;
}

std::vector<std::u32string> Gpt2Split(std::u32string_view piece) {
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < piece.size()) {
    const char32_t c = piece[i];
    if (IsWhiteSpace(c)) {
      ++i;
      continue;
    }
    size_t len = ContractionLength(piece, i, false);
    if (len == 0) {
      bool (*same)(char32_t) = IsLetter(c) ? IsLetter : IsNumber(c) ? IsNumber : IsOther;
      size_t j = i + 1;
      while (j < piece.size() && same(piece[j])) ++j;
      len = j - i;
    }
    out.emplace_back(piece.substr(i, len));
    i += len;
  }
  return out;
}

char32_t ByteToUnicode(uint8_t b) {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int v = 0; v < 256; ++v) {
      const bool printable = (v >= '!' && v <= '~') || (v >= 0xA1 && v <= 0xAC) || (v >= 0xAE && v <= 0xFF);
      t[v] = printable ? static_cast<char32_t>(v) : next++;
    }
    return t;
  }();
  return table[b];
}

std::vector<std::string> ByteSymbols(std::u32string_view text) {
  const std::string bytes = EncodeUtf8(text);
  std::vector<std::string> out;
  out.reserve(bytes.size());
  for (unsigned char b : bytes) out.push_back(EncodeUtf8(std::u32string(1, ByteToUnicode(b))));
  return out;
}

}  // namespace cf::clip
