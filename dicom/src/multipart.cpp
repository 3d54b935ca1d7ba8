// Streaming multipart/related reading and writing for the DICOMweb client.
#include "multipart.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "sagitta/dicom/error.h"
#include "ascii.h"

namespace sagitta::dicom::detail {
namespace {

constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
constexpr std::size_t kMaxLine = 1024;
constexpr std::size_t kMaxPreamble = 1024 * 1024;

bool only_padding(const std::string& s, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < to; ++i)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
  return true;
}

}  // namespace

MultipartReader::MultipartReader(std::string boundary, Handlers handlers)
    : dash_boundary_("--" + std::move(boundary)), handlers_(std::move(handlers)) {
  if (dash_boundary_.size() < 3 || dash_boundary_.size() > 72)
    throw DicomError("the multipart boundary must have 1 to 70 characters");
}

void MultipartReader::feed(const char* data, std::size_t size) {
  if (state_ == State::Epilogue) return;
  buffer_.append(data, size);
  while (step()) {
  }
}

bool MultipartReader::step() {
  switch (state_) {
    case State::Preamble: {
      std::size_t pos = std::string::npos;
      if (at_start_) {
        if (buffer_.size() < dash_boundary_.size() && dash_boundary_.compare(0, buffer_.size(), buffer_) == 0) return false;
        if (buffer_.compare(0, dash_boundary_.size(), dash_boundary_) == 0) pos = 0;
      }
      if (pos == std::string::npos) {
        const auto nl = buffer_.find("\n" + dash_boundary_);
        if (nl == std::string::npos) {
          // Keep what could still be the start of "\n--boundary".
          const std::size_t keep = std::min(buffer_.size(), dash_boundary_.size());
          preamble_ += buffer_.size() - keep;
          if (preamble_ > kMaxPreamble) throw DicomError("no multipart boundary in the first 1 MiB of the answer");
          buffer_.erase(0, buffer_.size() - keep);
          if (preamble_ > 0 || buffer_.size() >= dash_boundary_.size()) at_start_ = false;
          return false;
        }
        pos = nl + 1;
      }
      const std::size_t after = pos + dash_boundary_.size();
      const auto nl = buffer_.find('\n', after);
      if (nl == std::string::npos) {
        if (buffer_.size() - after > kMaxLine) throw DicomError("the opening multipart boundary line is too long");
        return false;
      }
      if (buffer_.compare(after, 2, "--") == 0) {  // closing boundary first: no parts
        state_ = State::Epilogue;
        buffer_.clear();
        return false;
      }
      if (!only_padding(buffer_, after, nl)) {  // "--boundaryX...": not our boundary
        at_start_ = false;
        buffer_.erase(0, pos + 1);
        return true;
      }
      const bool crlf = nl > 0 && buffer_[nl - 1] == '\r';
      delimiter_ = (crlf ? "\r\n" : "\n") + dash_boundary_;
      buffer_.erase(0, nl + 1);
      state_ = State::Headers;
      pending_.clear();
      header_bytes_ = 0;
      return true;
    }
    case State::Headers: {
      const auto nl = buffer_.find('\n');
      if (nl == std::string::npos) {
        if (header_bytes_ + buffer_.size() > kMaxHeaderBytes) throw DicomError("a part's headers exceed 64 KiB");
        return false;
      }
      header_bytes_ += nl + 1;
      if (header_bytes_ > kMaxHeaderBytes) throw DicomError("a part's headers exceed 64 KiB");
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        if (handlers_.begin) handlers_.begin(parts_, pending_);
        state_ = State::Body;
      } else if ((line[0] == ' ' || line[0] == '\t') && !last_header_.empty()) {
        pending_[last_header_] += " " + detail::trim_space(line);  // folded continuation
      } else if (const auto colon = line.find(':'); colon != std::string::npos) {
        last_header_ = detail::ascii_lower(detail::trim_space(line.substr(0, colon)));
        pending_[last_header_] = detail::trim_space(line.substr(colon + 1));
      } else {
        throw DicomError(fmt::format("part {} has a malformed header line", parts_ + 1));
      }
      return true;
    }
    case State::Body: {
      const std::size_t d = delimiter_.size();
      const auto p = buffer_.find(delimiter_);
      if (p == std::string::npos) {
        if (buffer_.size() >= d) {
          const std::size_t emit = buffer_.size() - (d - 1);
          if (handlers_.data) handlers_.data(buffer_.data(), emit);
          buffer_.erase(0, emit);
        }
        return false;
      }
      if (buffer_.size() < p + d + 2) {  // what follows the boundary decides; content before it is safe
        if (p > 0) {
          if (handlers_.data) handlers_.data(buffer_.data(), p);
          buffer_.erase(0, p);
        }
        return false;
      }
      const char c0 = buffer_[p + d], c1 = buffer_[p + d + 1];
      const bool closing = c0 == '-' && c1 == '-';
      if (!closing && c0 != ' ' && c0 != '\t' && c0 != '\r' && c0 != '\n') {  // content that merely looks alike
        if (handlers_.data) handlers_.data(buffer_.data(), p + 1);
        buffer_.erase(0, p + 1);
        return true;
      }
      if (handlers_.data && p > 0) handlers_.data(buffer_.data(), p);
      if (handlers_.end) handlers_.end(parts_);
      ++parts_;
      buffer_.erase(0, p + d);
      state_ = State::AfterDelimiter;
      return true;
    }
    case State::AfterDelimiter: {
      if (buffer_.compare(0, 2, "--") == 0) {
        state_ = State::Epilogue;
        buffer_.clear();
        return false;
      }
      const auto nl = buffer_.find('\n');
      if (nl == std::string::npos) {
        if (buffer_.size() > kMaxLine) throw DicomError("a multipart boundary line is too long");
        return false;
      }
      if (!only_padding(buffer_, 0, nl)) throw DicomError(fmt::format("text after the boundary of part {}", parts_ + 1));
      buffer_.erase(0, nl + 1);
      state_ = State::Headers;
      pending_.clear();
      last_header_.clear();
      header_bytes_ = 0;
      return true;
    }
    case State::Epilogue: buffer_.clear(); return false;
  }
  return false;
}

void MultipartReader::finish() {
  switch (state_) {
    case State::Epilogue: return;
    case State::Preamble: throw DicomError("no multipart boundary found: not a multipart answer");
    case State::Headers:
    case State::Body:
      throw DicomError(fmt::format("the multipart answer is truncated: it ends inside part {}, before the closing boundary",
                                   parts_ + 1));
    case State::AfterDelimiter:
      throw DicomError(fmt::format("the multipart answer is truncated: it ends after part {} without the closing boundary",
                                   parts_));
  }
}

// ---- writing -----------------------------------------------------------------------------------

MultipartFileBody::MultipartFileBody(std::vector<std::filesystem::path> files, std::string boundary,
                                     const std::string& part_type) {
  for (std::size_t i = 0; i < files.size(); ++i) {
    Segment head;
    head.text = fmt::format("{}--{}\r\nContent-Type: {}\r\n\r\n", i ? "\r\n" : "", boundary, part_type);
    head.size = head.text.size();
    Segment body;
    body.file = files[i];
    body.size = static_cast<std::size_t>(std::filesystem::file_size(files[i]));
    segments_.push_back(std::move(head));
    segments_.push_back(std::move(body));
  }
  Segment tail;
  tail.text = fmt::format("\r\n--{}--\r\n", boundary);
  tail.size = tail.text.size();
  segments_.push_back(std::move(tail));
  for (const auto& s : segments_) size_ += s.size;
}

std::size_t MultipartFileBody::read(char* buffer, std::size_t size) {
  std::size_t filled = 0;
  while (filled < size && segment_ < segments_.size()) {
    Segment& s = segments_[segment_];
    const std::size_t n = std::min(size - filled, s.size - offset_);
    if (s.file.empty()) {
      std::copy_n(s.text.data() + offset_, n, buffer + filled);
    } else {
      if (offset_ == 0) {
        in_.close();
        in_.clear();
        in_.open(s.file, std::ios::binary);
        if (!in_) throw DicomError(fmt::format("store: cannot read {}", s.file.string()));
      }
      in_.read(buffer + filled, static_cast<std::streamsize>(n));
      if (static_cast<std::size_t>(in_.gcount()) != n)
        throw DicomError(fmt::format("store: {} became shorter while it was sent", s.file.string()));
    }
    filled += n;
    offset_ += n;
    if (offset_ == s.size) {
      if (!s.file.empty()) {
        in_.close();
        if (on_file_done) on_file_done(++files_done_);
      }
      ++segment_;
      offset_ = 0;
    }
  }
  return filled;
}

void MultipartFileBody::rewind() {
  in_.close();
  segment_ = offset_ = files_done_ = 0;
}

std::string random_boundary() {
  std::random_device rd;
  std::string s = "sagitta-";
  for (int i = 0; i < 4; ++i) s += fmt::format("{:08x}", rd());
  return s;
}

}  // namespace sagitta::dicom::detail
