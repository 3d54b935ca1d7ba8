// How deep sequences nest in a DICOM stream, without recursion (the declarations and their
// contract: nesting.h).
#include "nesting.h"

#include <zlib.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace sagitta::dicom::detail {
namespace {

constexpr std::uint64_t kUndefined = 0xFFFFFFFFu;

// Sequential bytes: a file (values skipped by seeking), memory, or an inflated stream.
class Source {
 public:
  virtual ~Source() = default;
  // Reads exactly n bytes; false at the end.
  virtual bool read(std::uint8_t* out, std::size_t n) = 0;
  virtual bool skip(std::uint64_t n) = 0;
  virtual std::uint64_t position() const = 0;
  // Peeks up to n bytes without consuming them; returns how many.
  virtual std::size_t peek(std::uint8_t* out, std::size_t n) = 0;
  // Bytes in the whole stream, kUnknownSize when it cannot be known (inflated streams).
  virtual std::uint64_t size() const = 0;
  // Moves back (or forward) to an absolute position; only files and memory can.
  virtual bool seek(std::uint64_t) { return false; }
};

constexpr std::uint64_t kUnknownSize = ~std::uint64_t(0);

class MemorySource : public Source {
 public:
  MemorySource(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool read(std::uint8_t* out, std::size_t n) override {
    if (size_ - pos_ < n) return false;
    std::memcpy(out, data_ + pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(std::uint64_t n) override {
    if (size_ - pos_ < n) return false;
    pos_ += n;
    return true;
  }
  std::uint64_t position() const override { return pos_; }
  std::size_t peek(std::uint8_t* out, std::size_t n) override {
    const std::size_t k = std::min<std::size_t>(n, size_ - pos_);
    if (k > 0) std::memcpy(out, data_ + pos_, k);
    return k;
  }
  std::uint64_t size() const override { return size_; }
  bool seek(std::uint64_t p) override {
    if (p > size_) return false;
    pos_ = static_cast<std::size_t>(p);
    return true;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_, pos_ = 0;
};

// A file read through its own buffer: tags are read, values skipped by seeking.
class FileSource : public Source {
 public:
  explicit FileSource(const std::filesystem::path& path) : file_(std::fopen(path.c_str(), "rb")) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(path, ec);
    size_ = ec ? kUnknownSize : n;
  }
  ~FileSource() override {
    if (file_) std::fclose(file_);
  }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  bool ok() const { return file_ != nullptr; }
  bool read(std::uint8_t* out, std::size_t n) override {
    if (!ensure(n)) return false;
    std::memcpy(out, buffer_.data() + head_, n);
    head_ += n;
    return true;
  }
  bool skip(std::uint64_t n) override {
    if (n <= tail_ - head_) {
      head_ += static_cast<std::size_t>(n);
      return true;
    }
    const std::uint64_t target = position() + n;
    if (fseeko(file_, static_cast<off_t>(target), SEEK_SET) != 0) return false;
    base_ = target;
    head_ = tail_ = 0;
    return ensure(0);
  }
  std::uint64_t position() const override { return base_ + head_; }
  std::size_t peek(std::uint8_t* out, std::size_t n) override {
    ensure(n);
    const std::size_t k = std::min(n, tail_ - head_);
    if (k > 0) std::memcpy(out, buffer_.data() + head_, k);
    return k;
  }
  std::uint64_t size() const override { return size_; }
  bool seek(std::uint64_t p) override {
    if (fseeko(file_, static_cast<off_t>(p), SEEK_SET) != 0) return false;
    base_ = p;
    head_ = tail_ = 0;
    return true;
  }

 private:
  // At least n unread bytes in the buffer, when the file has them.
  bool ensure(std::size_t n) {
    if (tail_ - head_ >= n) return true;
    std::memmove(buffer_.data(), buffer_.data() + head_, tail_ - head_);
    base_ += head_;
    tail_ -= head_;
    head_ = 0;
    tail_ += std::fread(buffer_.data() + tail_, 1, buffer_.size() - tail_, file_);
    return tail_ >= n;
  }

  std::FILE* file_;
  std::uint64_t size_ = kUnknownSize;
  std::array<std::uint8_t, 65536> buffer_{};
  std::uint64_t base_ = 0;  // file position of buffer_[0]
  std::size_t head_ = 0, tail_ = 0;
};

// Raw deflate (transfer syntax 1.2.840.10008.1.2.1.99) over another source, inflated as read.
class InflateSource : public Source {
 public:
  explicit InflateSource(Source& in) : in_(in) {
    std::memset(&z_, 0, sizeof z_);
    ok_ = inflateInit2(&z_, -MAX_WBITS) == Z_OK;
  }
  ~InflateSource() override { inflateEnd(&z_); }
  InflateSource(const InflateSource&) = delete;
  InflateSource& operator=(const InflateSource&) = delete;
  bool read(std::uint8_t* out, std::size_t n) override {
    for (std::size_t done = 0; done < n;) {
      if (head_ == out_.size() && !fill()) return false;
      const std::size_t k = std::min(n - done, out_.size() - head_);
      std::memcpy(out + done, out_.data() + head_, k);
      head_ += k;
      done += k;
    }
    pos_ += n;
    return true;
  }
  bool skip(std::uint64_t n) override {
    while (n > 0) {
      if (head_ == out_.size() && !fill()) return false;
      const std::uint64_t k = std::min<std::uint64_t>(n, out_.size() - head_);
      head_ += k;
      n -= k;
      pos_ += k;
    }
    return true;
  }
  std::uint64_t position() const override { return pos_; }
  std::size_t peek(std::uint8_t* out, std::size_t n) override {
    while (out_.size() - head_ < n && fill()) {
    }
    const std::size_t k = std::min(n, out_.size() - head_);
    if (k > 0) std::memcpy(out, out_.data() + head_, k);
    return k;
  }
  std::uint64_t size() const override { return known_size_; }
  // The inflated length, when a first pass measured it.
  void set_size(std::uint64_t n) { known_size_ = n; }

 private:
  // Appends inflated bytes (keeping unread ones); false at the end of the stream.
  bool fill() {
    if (!ok_ || ended_) return false;
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
    std::array<std::uint8_t, 16384> inflated{};
    for (;;) {
      if (z_.avail_in == 0) {
        const std::size_t k = in_.peek(in_buffer_.data(), in_buffer_.size());
        if (k == 0) return ended_ = true, false;
        in_.skip(k);
        z_.next_in = in_buffer_.data();
        z_.avail_in = static_cast<uInt>(k);
      }
      z_.next_out = inflated.data();
      z_.avail_out = static_cast<uInt>(inflated.size());
      const int r = inflate(&z_, Z_NO_FLUSH);
      const std::size_t produced = inflated.size() - z_.avail_out;
      out_.insert(out_.end(), inflated.begin(), inflated.begin() + static_cast<std::ptrdiff_t>(produced));
      if (r == Z_STREAM_END || (r != Z_OK && r != Z_BUF_ERROR)) ended_ = true;
      if (produced > 0) return true;
      if (ended_) return false;
    }
  }

  Source& in_;
  z_stream z_;
  bool ok_ = false, ended_ = false;
  std::array<std::uint8_t, 16384> in_buffer_{};
  std::vector<std::uint8_t> out_;
  std::size_t head_ = 0;
  std::uint64_t pos_ = 0;
  std::uint64_t known_size_ = kUnknownSize;
};

struct Encoding {
  bool explicit_vr = true, big_endian = false;
};

std::uint16_t u16(const std::uint8_t* p, bool big) {
  return big ? static_cast<std::uint16_t>(p[0] << 8 | p[1]) : static_cast<std::uint16_t>(p[1] << 8 | p[0]);
}
std::uint32_t u32(const std::uint8_t* p, bool big) {
  return big ? (std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3])
             : (std::uint32_t(p[3]) << 24 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[1]) << 8 | p[0]);
}

bool upper(std::uint8_t c) { return c >= 'A' && c <= 'Z'; }

bool is_known_vr(const std::uint8_t* v) {
  static const char* vrs[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD",
                              "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI",
                              "UL", "UN", "UR", "US", "UT", "UV", "OX", "xs", "lt", "ox", "up", "na", "pi"};
  for (const char* vr : vrs)
    if (v[0] == vr[0] && v[1] == vr[1]) return true;
  return false;
}

// VRs with a 2-byte reserved field and a 4-byte length in explicit VR. Unknown VRs of two upper
// case letters are read by DCMTK the same way; anything else with a 2-byte length.
bool long_length(const std::uint8_t* v) {
  static const char* vrs[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"};
  for (const char* vr : vrs)
    if (v[0] == vr[0] && v[1] == vr[1]) return true;
  if (is_known_vr(v)) return false;
  return upper(v[0]) && upper(v[1]);
}

// Decides the encoding of a dataset from its first element: byte order from the group number's
// bytes, explicit VR when two letters of a VR follow the tag.
Encoding sniff(Source& s, Encoding fallback) {
  std::array<std::uint8_t, 6> head{};
  if (s.peek(head.data(), head.size()) < head.size()) return fallback;
  Encoding e;
  e.big_endian = head[0] == 0 && head[1] != 0;
  e.explicit_vr = upper(head[4]) && upper(head[5]) && is_known_vr(head.data() + 4);
  return e;
}

struct Open {
  enum Kind { Sequence, Item, Fragments } kind;
  std::uint64_t end;  // stream position, or kUndefined
  Encoding encoding;  // of the elements inside
};

class Walker {
 public:
  // check_lengths: the stream is recognisably DICOM, so a value past its end is corruption (for
  // other bytes DCMTK's own detection decides, and says "not DICOM").
  Walker(Source& s, int limit, bool check_lengths) : s_(s), limit_(limit), check_lengths_(check_lengths) {}

  int walk(Encoding encoding) {
    std::vector<Open> open;
    std::uint8_t b[8];
    for (;;) {
      while (!open.empty() && open.back().end != kUndefined && s_.position() >= open.back().end) pop(open);
      const Encoding e = open.empty() ? encoding : open.back().encoding;
      if (!s_.read(b, 4)) break;
      const std::uint16_t group = u16(b, e.big_endian), element = u16(b + 2, e.big_endian);
      if (group == 0xFFFE) {
        if (!s_.read(b, 4)) break;
        const std::uint32_t length = u32(b, e.big_endian);
        if (element == 0xE000) {
          if (!open.empty() && open.back().kind == Open::Fragments) {
            if (length == kUndefined || !s_.skip(length)) break;
          } else {
            push(open, {Open::Item, end_of(length), e});
          }
        } else if (element == 0xE00D) {
          while (!open.empty() && open.back().kind != Open::Item) pop(open);
          if (!open.empty()) pop(open);
        } else if (element == 0xE0DD) {
          while (!open.empty() && open.back().kind == Open::Item) pop(open);
          if (!open.empty()) pop(open);
        }
        if (depth_ > limit_) return depth_;
        continue;
      }
      std::uint64_t length = 0;
      bool sequence_vr = false, un = false;
      if (e.explicit_vr) {
        if (!s_.read(b, 4)) break;
        const std::uint8_t vr[2] = {b[0], b[1]};
        if (long_length(vr)) {
          if (!s_.read(b, 4)) break;
          length = u32(b, e.big_endian);
        } else {
          length = u16(b + 2, e.big_endian);
        }
        sequence_vr = vr[0] == 'S' && vr[1] == 'Q';
        un = vr[0] == 'U' && vr[1] == 'N';
      } else {
        if (!s_.read(b, 4)) break;
        length = u32(b, e.big_endian);
      }
      const bool pixel_data = group == 0x7FE0 && element == 0x0010;
      // A value longer than the rest of the file: DCMTK would allocate the claimed length (up to
      // 4 GiB) before failing. Top-level pixel data is left to the scan's own truncation check.
      if (check_lengths_ && length != kUndefined && s_.size() != kUnknownSize &&
          length > s_.size() - std::min(s_.size(), s_.position()) &&
          !(pixel_data && open.empty())) {
        char tag_text[16];
        std::snprintf(tag_text, sizeof tag_text, "(%04X,%04X)", group, element);
        problem_ = std::string("element ") + tag_text + " claims " + std::to_string(length) + " bytes but only " +
                   std::to_string(s_.size() - std::min(s_.size(), s_.position())) +
                   " remain in the file; truncated or corrupt, refused unparsed";
        return max_depth_;
      }
      if (length == kUndefined) {
        // Encapsulated pixel data holds fragments; SQ, UN and implicit-VR elements items.
        if (pixel_data && !sequence_vr) {
          push(open, {Open::Fragments, kUndefined, e});
        } else {
          Encoding inner = e;
          if (un) inner = {false, false};  // an undefined-length UN is an implicit VR LE sequence
          push(open, {Open::Sequence, kUndefined, inner});
        }
      } else if (sequence_vr || looks_like_items(e, un)) {
        Encoding inner = e;
        if (un) inner = {false, false};
        push(open, {Open::Sequence, s_.position() + length, inner});
      } else if (!s_.skip(length)) {
        break;
      }
      if (depth_ > limit_) return depth_;
    }
    return max_depth_;
  }

 private:
  // A defined-length value that starts with an item tag may be read as a sequence by DCMTK (VR UN
  // of a dictionary SQ, implicit VR, private sequences): walk it.
  bool looks_like_items(const Encoding& e, bool un) {
    std::uint8_t head[4];
    if (s_.peek(head, 4) < 4) return false;
    const bool big = un ? false : e.big_endian;
    return u16(head, big) == 0xFFFE && (u16(head + 2, big) == 0xE000 || u16(head + 2, big) == 0xE0DD);
  }

  std::uint64_t end_of(std::uint32_t length) const {
    return length == kUndefined ? kUndefined : s_.position() + length;
  }

  void push(std::vector<Open>& open, Open o) {
    open.push_back(o);
    if (o.kind != Open::Item) {
      ++depth_;
      max_depth_ = std::max(max_depth_, depth_);
    }
  }
  void pop(std::vector<Open>& open) {
    if (open.back().kind != Open::Item) --depth_;
    open.pop_back();
  }

  Source& s_;
  int limit_;
  bool check_lengths_;
  int depth_ = 0, max_depth_ = 0;

 public:
  std::string problem_;  // a value running past the end of the file
};

struct Facts {
  int depth = 0;
  std::string problem;
};

Facts run(Walker w, Encoding e) {
  Facts f;
  f.depth = w.walk(e);
  f.problem = w.problem_;
  return f;
}

Facts walk_stream(Source& s, int limit) {
  std::array<std::uint8_t, 132> head{};
  const std::size_t got = s.peek(head.data(), head.size());
  bool dicom = false;
  if (got == 132 && std::memcmp(head.data() + 128, "DICM", 4) == 0) {
    s.skip(132);
    dicom = true;
  } else if (got >= 2) {
    // A bare dataset or meta header starts with group 0002 or 0008 (either byte order).
    const unsigned g = head[0] | head[1] << 8;
    dicom = g == 0x0002 || g == 0x0008 || g == 0x0200 || g == 0x0800;
  }
  // Meta header: group 0002, explicit VR little endian (tolerating implicit), names the syntax.
  std::string syntax;
  for (;;) {
    std::uint8_t b[8];
    if (s.peek(b, 8) < 8 || u16(b, false) != 0x0002) break;
    const Encoding meta = sniff(s, {true, false});
    std::uint8_t tag[4];
    s.read(tag, 4);
    std::uint32_t length = 0;
    std::uint8_t l[4];
    if (meta.explicit_vr) {
      if (!s.read(l, 4)) return {};
      if (long_length(l)) {
        if (!s.read(l, 4)) return {};
        length = u32(l, false);
      } else {
        length = u16(l + 2, false);
      }
    } else {
      if (!s.read(l, 4)) return {};
      length = u32(l, false);
    }
    if (length == kUndefined) return {};
    if (u16(tag + 2, false) == 0x0010 && length < 256) {
      syntax.resize(length);
      if (!s.read(reinterpret_cast<std::uint8_t*>(syntax.data()), length)) return {};
      while (!syntax.empty() && (syntax.back() == '\0' || syntax.back() == ' ')) syntax.pop_back();
    } else if (!s.skip(length)) {
      return {};
    }
  }
  if (syntax == "1.2.840.10008.1.2.1.99") {
    // Two passes: the first measures the inflated length, so that the second can tell a value
    // that runs past the end, as for uncompressed files.
    std::uint64_t inflated_size = kUnknownSize;
    const std::uint64_t start = s.position();
    {
      InflateSource measure(s);
      while (measure.skip(1 << 20)) {
      }
      inflated_size = measure.position();
    }
    if (!s.seek(start)) inflated_size = kUnknownSize;
    InflateSource inflated(s);
    inflated.set_size(inflated_size);
    return run(Walker(inflated, limit, dicom), sniff(inflated, {true, false}));
  }
  const Encoding declared{syntax != "1.2.840.10008.1.2", syntax == "1.2.840.10008.1.2.2"};
  return run(Walker(s, limit, dicom), sniff(s, declared));
}

}  // namespace

int sequence_depth(const std::uint8_t* data, std::size_t size, int limit) {
  MemorySource s(data, size);
  return walk_stream(s, limit).depth;
}

int sequence_depth(const std::filesystem::path& path, int limit) {
  FileSource s(path);
  if (!s.ok()) return 0;
  return walk_stream(s, limit).depth;
}

std::string nesting_problem(const std::filesystem::path& path) {
  FileSource s(path);
  if (!s.ok()) return {};
  const Facts facts = walk_stream(s, kMaxSequenceDepth);
  if (facts.depth > kMaxSequenceDepth)
    return "sequences nest more than " + std::to_string(kMaxSequenceDepth) +
           " levels deep; refused unparsed (a hostile or corrupt file: parsing it could overflow the stack)";
  return facts.problem;
}

}  // namespace sagitta::dicom::detail
