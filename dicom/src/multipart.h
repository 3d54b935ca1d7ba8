#pragma once
// multipart/related bodies (RFC 2046 §5.1, RFC 2387) as DICOMweb uses them: a streaming reader
// for WADO-RS answers and a streaming writer for STOW-RS requests. Internal to sagitta::dicom.
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sagitta::dicom::detail {

// Reads a multipart body fed in pieces of any size, handing each part's headers and content on
// as they arrive (memory stays bounded by the longest header block and the delimiter).
//
// Tolerated: a preamble and an epilogue, transport padding after a boundary, bare LF line ends
// instead of CRLF (the opening boundary line decides which one delimits parts, so content ending
// in CR is never cut). Refused with DicomError: no opening boundary, a header block over 64 KiB,
// a body that ends before the closing boundary (truncated). Messages carry no context: callers
// prefix the URL.
class MultipartReader {
public:
  using Headers = std::map<std::string, std::string>;  // lower-case name -> value
  struct Handlers {
    std::function<void(std::size_t index, const Headers&)> begin;  // index from 0
    std::function<void(const char* data, std::size_t size)> data;
    std::function<void(std::size_t index)> end;
  };
  MultipartReader(std::string boundary, Handlers handlers);
  void feed(const char* data, std::size_t size);
  // The body ended: throws when it was incomplete.
  void finish();
  std::size_t parts() const { return parts_; }

private:
  enum class State { Preamble, Headers, Body, AfterDelimiter, Epilogue };
  bool step();  // one state transition over buffer_; false when more input is needed
  std::string dash_boundary_, delimiter_, buffer_;
  Handlers handlers_;
  State state_ = State::Preamble;
  Headers pending_;           // the headers of the part being read
  std::string last_header_;   // for folded header lines
  std::size_t parts_ = 0, preamble_ = 0, header_bytes_ = 0;
  bool at_start_ = true;
};

// A multipart/related request body of whole files, each a part with `part_type`, read from the
// files while it is sent. size() is exact before anything is read.
class MultipartFileBody {
public:
  MultipartFileBody(std::vector<std::filesystem::path> files, std::string boundary, const std::string& part_type);
  std::size_t size() const { return size_; }
  // Fills `buffer` with up to `size` bytes; 0 at the end. Throws DicomError when a file changed
  // size or cannot be read. `on_file_done(n)` is called after the n-th file's last byte.
  std::size_t read(char* buffer, std::size_t size);
  void rewind();
  std::function<void(std::size_t files_done)> on_file_done;

private:
  struct Segment {
    std::string text;             // literal bytes, or
    std::filesystem::path file;   // a file's content
    std::size_t size = 0;
  };
  std::vector<Segment> segments_;
  std::size_t size_ = 0, segment_ = 0, offset_ = 0, files_done_ = 0;
  std::ifstream in_;
};

// A boundary that no DICOM file will contain by chance (128 random bits).
std::string random_boundary();

}  // namespace sagitta::dicom::detail
