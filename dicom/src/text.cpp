// DICOM text to UTF-8 (the declarations and their contract: sagitta/dicom/text.h).
//
// Debian's DCMTK converts character sets through glibc's iconv, but it aborts a whole value on
// the first illegal byte and converts whole datasets in place. Sagitta needs a per-value
// conversion that never fails, so it walks the ISO 2022 code extensions itself and uses glibc's
// iconv only for the byte runs of each set, replacing what does not decode with U+FFFD.
#include "sagitta/dicom/text.h"

#include <iconv.h>

#include <array>
#include <cerrno>
#include <map>
#include <mutex>
#include <vector>

namespace sagitta::dicom {
namespace {

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

void append_code_point(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 when it is not well formed.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) n = 3;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xEE && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else return 0;
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

// iconv descriptors are not thread-safe: one per thread and codec, closed when the thread ends
// (scans start worker threads each time).
struct Descriptors {
  std::map<std::string, iconv_t> open;
  Descriptors() = default;
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  ~Descriptors() {
    for (auto& [codec, cd] : open)
      if (cd != reinterpret_cast<iconv_t>(-1)) iconv_close(cd);
  }
};

iconv_t descriptor(const char* codec) {
  thread_local Descriptors cache;
  auto it = cache.open.find(codec);
  if (it == cache.open.end()) it = cache.open.emplace(codec, iconv_open("UTF-8", codec)).first;
  return it->second;
}

// Converts bytes in `codec` and appends UTF-8; undecodable bytes become U+FFFD one by one.
void convert_run(const char* codec, std::string_view bytes, std::string& out) {
  if (bytes.empty()) return;
  const iconv_t cd = descriptor(codec);
  if (cd == reinterpret_cast<iconv_t>(-1)) {
    for (const char c : bytes)
      if (static_cast<unsigned char>(c) < 0x80) out += c;
      else out += kReplacement;
    return;
  }
  iconv(cd, nullptr, nullptr, nullptr, nullptr);
  std::vector<char> input(bytes.begin(), bytes.end());
  char* in = input.data();
  std::size_t in_left = input.size();
  std::array<char, 1024> buffer{};
  while (in_left > 0) {
    char* o = buffer.data();
    std::size_t o_left = buffer.size();
    const std::size_t r = iconv(cd, &in, &in_left, &o, &o_left);
    out.append(buffer.data(), static_cast<std::size_t>(o - buffer.data()));
    if (r == static_cast<std::size_t>(-1) && errno != E2BIG) {  // EILSEQ, EINVAL: skip one byte
      out += kReplacement;
      ++in;
      --in_left;
      iconv(cd, nullptr, nullptr, nullptr, nullptr);
    }
  }
  char* o = buffer.data();
  std::size_t o_left = buffer.size();
  iconv(cd, nullptr, nullptr, &o, &o_left);
  out.append(buffer.data(), static_cast<std::size_t>(o - buffer.data()));
}

// The code elements of ISO 2022 as DICOM uses them (PS3.3 C.12.1.1.2, PS3.5 6.1.2.5).
enum class Set {
  None,       // no set designated: bytes are replaced
  Ascii,      // ISO-IR 6
  Romaji,     // JIS X 0201 roman (G0)
  Katakana,   // JIS X 0201 katakana (G1)
  Single,     // an 8-bit set's upper half (G1), by iconv codec
  Jis0208,    // JIS X 0208 (G0, two bytes)
  Jis0212,    // JIS X 0212 (G0, two bytes)
  Ksc,        // KS X 1001 (G1, two bytes)
  Gb2312,     // GB 2312 (G1, two bytes)
  Whole,      // an encoding that is not ISO 2022 (UTF-8, GB18030, GBK): the whole value, by codec
};

struct Term {
  const char* name;  // without spaces, underscores and hyphens, upper case
  Set g0, g1;
  const char* codec;
};

// Non-ISO 2022 and ISO 2022 names of each defined term.
constexpr Term kTerms[] = {
    {"ISOIR6", Set::Ascii, Set::None, nullptr},         {"ISO2022IR6", Set::Ascii, Set::None, nullptr},
    {"ISOIR100", Set::Ascii, Set::Single, "ISO-8859-1"}, {"ISO2022IR100", Set::Ascii, Set::Single, "ISO-8859-1"},
    {"ISOIR101", Set::Ascii, Set::Single, "ISO-8859-2"}, {"ISO2022IR101", Set::Ascii, Set::Single, "ISO-8859-2"},
    {"ISOIR109", Set::Ascii, Set::Single, "ISO-8859-3"}, {"ISO2022IR109", Set::Ascii, Set::Single, "ISO-8859-3"},
    {"ISOIR110", Set::Ascii, Set::Single, "ISO-8859-4"}, {"ISO2022IR110", Set::Ascii, Set::Single, "ISO-8859-4"},
    {"ISOIR144", Set::Ascii, Set::Single, "ISO-8859-5"}, {"ISO2022IR144", Set::Ascii, Set::Single, "ISO-8859-5"},
    {"ISOIR127", Set::Ascii, Set::Single, "ISO-8859-6"}, {"ISO2022IR127", Set::Ascii, Set::Single, "ISO-8859-6"},
    {"ISOIR126", Set::Ascii, Set::Single, "ISO-8859-7"}, {"ISO2022IR126", Set::Ascii, Set::Single, "ISO-8859-7"},
    {"ISOIR138", Set::Ascii, Set::Single, "ISO-8859-8"}, {"ISO2022IR138", Set::Ascii, Set::Single, "ISO-8859-8"},
    {"ISOIR148", Set::Ascii, Set::Single, "ISO-8859-9"}, {"ISO2022IR148", Set::Ascii, Set::Single, "ISO-8859-9"},
    {"ISOIR203", Set::Ascii, Set::Single, "ISO-8859-15"}, {"ISO2022IR203", Set::Ascii, Set::Single, "ISO-8859-15"},
    {"ISOIR166", Set::Ascii, Set::Single, "TIS-620"},    {"ISO2022IR166", Set::Ascii, Set::Single, "TIS-620"},
    {"ISOIR13", Set::Romaji, Set::Katakana, nullptr},    {"ISO2022IR13", Set::Romaji, Set::Katakana, nullptr},
    // Multi-byte sets are normally reached by escape sequences; as a first (or only) term, the
    // Korean and Chinese G1 sets are taken as designated, as writers often assume.
    {"ISO2022IR87", Set::Ascii, Set::None, nullptr},     {"ISO2022IR159", Set::Ascii, Set::None, nullptr},
    {"ISO2022IR149", Set::Ascii, Set::Ksc, nullptr},     {"ISO2022IR58", Set::Ascii, Set::Gb2312, nullptr},
    {"ISOIR192", Set::Whole, Set::None, "UTF-8"},        {"GB18030", Set::Whole, Set::None, "GB18030"},
    {"GBK", Set::Whole, Set::None, "GBK"},
};

std::string normalise(std::string_view term) {
  std::string s;
  for (const char c : term)
    if (c != ' ' && c != '_' && c != '-' && c != '\0') s += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  return s;
}

const Term* find_term(std::string_view term) {
  const std::string n = normalise(term);
  if (n.empty()) return &kTerms[0];
  for (const auto& t : kTerms)
    if (n == t.name) return &t;
  return nullptr;
}

std::vector<std::string_view> split_terms(std::string_view value) {
  std::vector<std::string_view> terms;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= value.size(); ++i)
    if (i == value.size() || value[i] == '\\') {
      terms.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  return terms;
}

// The upper half (0x80..0xFF) of an 8-bit set as UTF-8, built once per codec.
const std::array<std::string, 128>& upper_half(const char* codec) {
  static std::mutex mutex;
  static std::map<std::string, std::array<std::string, 128>> tables;
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, fresh] = tables.try_emplace(codec);
  if (fresh)
    for (int b = 0x80; b <= 0xFF; ++b) {
      const char c = static_cast<char>(b);
      convert_run(codec, std::string_view(&c, 1), it->second[b - 0x80]);
    }
  return it->second;
}

struct State {
  Set g0 = Set::Ascii, g1 = Set::None;
  const char* g1_codec = nullptr;
};

// Applies the escape sequence at s[i] (s[i] == ESC); returns its length, 0 if unknown.
std::size_t escape(std::string_view s, std::size_t i, State& st) {
  const std::string_view rest = s.substr(i + 1);
  auto starts = [&](std::string_view p) { return rest.substr(0, p.size()) == p; };
  if (starts("(B")) return st.g0 = Set::Ascii, 3;
  if (starts("(J")) return st.g0 = Set::Romaji, 3;
  if (starts(")I")) return st.g1 = Set::Katakana, 3;
  if (starts("$B") || starts("$@")) return st.g0 = Set::Jis0208, 3;
  if (starts("$(D")) return st.g0 = Set::Jis0212, 4;
  if (starts("$)C")) return st.g1 = Set::Ksc, 4;
  if (starts("$)A")) return st.g1 = Set::Gb2312, 4;
  if (rest.size() >= 2 && rest[0] == '-') {
    static const std::pair<char, const char*> sets[] = {
        {'A', "ISO-8859-1"}, {'B', "ISO-8859-2"}, {'C', "ISO-8859-3"}, {'D', "ISO-8859-4"},
        {'L', "ISO-8859-5"}, {'G', "ISO-8859-6"}, {'F', "ISO-8859-7"}, {'H', "ISO-8859-8"},
        {'M', "ISO-8859-9"}, {'T', "TIS-620"},    {'b', "ISO-8859-15"}};
    for (const auto& [final_byte, codec] : sets)
      if (rest[1] == final_byte) {
        st.g1 = Set::Single;
        st.g1_codec = codec;
        return 3;
      }
  }
  return 0;
}

std::string decode_iso2022(std::string_view s, const State& initial) {
  std::string out;
  State st = initial;
  std::string pending;  // multi-byte bytes collected for one iconv run
  const char* pending_codec = nullptr;
  auto flush = [&]() {
    if (pending_codec) convert_run(pending_codec, pending, out);
    pending.clear();
    pending_codec = nullptr;
  };
  auto collect = [&](const char* codec, std::string_view bytes) {
    if (pending_codec && pending_codec != codec) flush();
    pending_codec = codec;
    pending.append(bytes.data(), bytes.size());
  };
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0x1B) {
      flush();
      const std::size_t n = escape(s, i, st);
      if (n == 0) {
        out += kReplacement;
        ++i;
      } else {
        i += n;
      }
      continue;
    }
    if (c < 0x80) {
      const bool two_byte_g0 = st.g0 == Set::Jis0208 || st.g0 == Set::Jis0212;
      if (two_byte_g0 && c >= 0x21 && c <= 0x7E) {
        if (i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x21 && static_cast<unsigned char>(s[i + 1]) <= 0x7E) {
          // JIS X 0208/0212 in G0 are the EUC-JP code points with the high bits set.
          std::string euc;
          if (st.g0 == Set::Jis0212) euc += '\x8F';
          euc += static_cast<char>(c | 0x80);
          euc += static_cast<char>(static_cast<unsigned char>(s[i + 1]) | 0x80);
          collect("EUC-JP", euc);
          i += 2;
        } else {
          flush();
          out += kReplacement;
          ++i;
        }
        continue;
      }
      flush();
      if (st.g0 == Set::Romaji && c == 0x5C) append_code_point(out, 0xA5);        // YEN SIGN
      else if (st.g0 == Set::Romaji && c == 0x7E) append_code_point(out, 0x203E);  // OVERLINE
      else out += static_cast<char>(c);
      // Lines and values start again in the initial sets (PS3.5 6.1.2.5.3).
      if (c == '\r' || c == '\n' || c == '\f' || c == '\\') st = initial;
      ++i;
      continue;
    }
    switch (st.g1) {
      case Set::Single:
        flush();
        out += upper_half(st.g1_codec)[c - 0x80];
        ++i;
        break;
      case Set::Katakana:
        flush();
        if (c >= 0xA1 && c <= 0xDF) append_code_point(out, 0xFF61 + (c - 0xA1));
        else out += kReplacement;
        ++i;
        break;
      case Set::Ksc:
      case Set::Gb2312:
        if (i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80) {
          collect(st.g1 == Set::Ksc ? "EUC-KR" : "GB2312", s.substr(i, 2));
          i += 2;
        } else {
          flush();
          out += kReplacement;
          ++i;
        }
        break;
      default:
        flush();
        out += kReplacement;
        ++i;
    }
  }
  flush();
  return out;
}

bool plain_ascii(std::string_view s) {
  for (const char c : s)
    if (static_cast<unsigned char>(c) >= 0x80 || c == 0x1B) return false;
  return true;
}

}  // namespace

std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_sequence(text, i);
    if (n == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(text.data() + i, n);
      i += n;
    }
  }
  return out;
}

bool known_character_set(std::string_view specific_character_set) {
  for (const auto term : split_terms(specific_character_set))
    if (!find_term(term)) return false;
  return true;
}

std::string to_utf8(std::string_view bytes, std::string_view specific_character_set) {
  const auto terms = split_terms(specific_character_set);
  const Term* first = find_term(terms.front());
  if (first && first->g0 == Set::Whole) {
    if (plain_ascii(bytes)) return std::string(bytes);
    if (std::string_view(first->codec) == "UTF-8") return valid_utf8(bytes);
    std::string out;
    convert_run(first->codec, bytes, out);
    return valid_utf8(out);
  }
  const bool undeclared = terms.size() == 1 && normalise(terms.front()).empty();
  if (undeclared) return valid_utf8(bytes);  // keeps UTF-8 written without a declaration
  if (plain_ascii(bytes)) return std::string(bytes);
  State initial;
  if (first) {
    initial.g0 = first->g0;
    initial.g1 = first->g1;
    initial.g1_codec = first->codec;
  } else {
    initial.g1 = Set::None;  // unknown set: its bytes cannot be read
  }
  return valid_utf8(decode_iso2022(bytes, initial));
}

}  // namespace sagitta::dicom
