// Reader for Siemens' private CSA header (tags (0029,xx10)/(0029,xx20), format "SV10"), which
// carries what standard tags lack for mosaics: the number of tiles and the true slice normal (whose
// sign gives the order of the tiles along the normal) (the declarations and their contract:
// siemens_csa.h).
#include "siemens_csa.h"

#include <cstring>

namespace sagitta::dicom::detail {
namespace {

// Bounded little-endian reader: every read checks the remaining size.
class Reader {
public:
  Reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool read_u32(std::uint32_t& v) {
    if (pos_ + 4 > size_) return false;
    v = std::uint32_t(data_[pos_]) | std::uint32_t(data_[pos_ + 1]) << 8 |
        std::uint32_t(data_[pos_ + 2]) << 16 | std::uint32_t(data_[pos_ + 3]) << 24;
    pos_ += 4;
    return true;
  }
  bool read_string(std::size_t length, std::string& s) {
    if (pos_ + length > size_) return false;
    const char* begin = reinterpret_cast<const char*>(data_ + pos_);
    s.assign(begin, strnlen(begin, length));
    pos_ += length;
    return true;
  }
  bool skip(std::size_t n) {
    if (pos_ + n > size_) return false;
    pos_ += n;
    return true;
  }

private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && s[b] == ' ') ++b;
  return s.substr(b);
}

}  // namespace

std::map<std::string, std::vector<std::string>> parse_csa_header(const std::uint8_t* data,
                                                                 std::size_t size) {
  std::map<std::string, std::vector<std::string>> out;
  // "SV10" + 4 unused bytes, then the element count and a fixed 77.
  if (size < 16 || std::memcmp(data, "SV10", 4) != 0) return out;
  Reader r(data, size);
  std::uint32_t n_elements = 0, unused = 0;
  if (!r.skip(8) || !r.read_u32(n_elements) || !r.read_u32(unused) || n_elements > 1000) return {};
  for (std::uint32_t e = 0; e < n_elements; ++e) {
    std::string name, vr;
    std::uint32_t vm = 0, syngo_dt = 0, n_items = 0, sync = 0;
    if (!r.read_string(64, name) || !r.read_u32(vm) || !r.read_string(4, vr) ||
        !r.read_u32(syngo_dt) || !r.read_u32(n_items) || !r.read_u32(sync) || n_items > 10000)
      return {};
    std::vector<std::string> values;
    for (std::uint32_t i = 0; i < n_items; ++i) {
      std::uint32_t len[4];
      for (auto& l : len)
        if (!r.read_u32(l)) return {};
      // Item length is in len[1]; values are padded to a multiple of 4 bytes.
      std::string value;
      if (!r.read_string(len[1], value) || !r.skip((4 - len[1] % 4) % 4)) return {};
      if (i < vm) values.push_back(trim(value));
    }
    out[name] = std::move(values);
  }
  return out;
}

}  // namespace sagitta::dicom::detail
