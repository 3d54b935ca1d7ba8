#pragma once
// The one HTTP client of sagitta::dicom (libcurl easy interface), for DICOMweb. Internal: the
// public header (sagitta/dicom/dicomweb.h) shows no libcurl type.
//
// Policy, the same for every request: TLS peers and host names are verified (an optional CA
// bundle replaces the system's), redirects are followed at most `max_redirects` times and an
// https URL never redirects to http, connect / total / stall timeouts, basic or bearer
// authentication never sent to another host on redirect. Every failure is one DicomError line
// "<what> <METHOD> <url>: ..." with the HTTP status or libcurl's reason; no credentials in it.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "sagitta/dicom/dicomweb.h"
#include "sagitta/dicom/error.h"

namespace sagitta::dicom::detail {

struct HttpRequest {
  std::string method = "GET";  // GET or POST
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // POST body: its exact length, and a reader filling `buffer` with up to `size` bytes (returns
  // the count, 0 at the end). Throwing aborts the request.
  std::size_t body_size = 0;
  std::function<std::size_t(char* buffer, std::size_t size)> body;
  std::function<void()> rewind;  // back to the body's first byte (a redirected POST is sent again)
};

// An answer with an error status: the message is the one line; status, content type and up to
// 64 KiB of the body stay available for callers that read a DICOM JSON failure report from it.
struct HttpError : DicomError {
  HttpError(const std::string& message, long s, std::string type, std::string text)
      : DicomError(message), status(s), content_type(std::move(type)), body(std::move(text)) {}
  long status;
  std::string content_type, body;
};

struct HttpResponse {
  long status = 0;
  std::string content_type;  // of the final response
  std::string effective_url;
};

// Receives the final response's body piece by piece once its status and headers are known.
// `status` is 2xx here: error statuses are collected by `http_request` and thrown. Throwing
// aborts the transfer and the exception reaches the caller of http_request.
using HttpSink = std::function<void(const HttpResponse& head, const char* data, std::size_t size)>;

// Runs `request` against `server` (auth, TLS, timeouts, redirects). Statuses 400 and up (and a
// 3xx left after the redirects) throw DicomError "<what> <METHOD> <url>: HTTP <code> <reason>"
// with a hint for 401/403; transport failures name libcurl's reason (refused, timeout, TLS,
// too many redirects). `cancelled` is polled during the transfer.
HttpResponse http_request(const DicomWebServer& server, const HttpRequest& request, const HttpSink& sink,
                          const std::string& what, const std::function<bool()>& cancelled = {});

// `url` with any user:password@ removed.
std::string redacted_url(const std::string& url);
// `url` for a message: redacted, a query over 100 characters shortened (QIDO's includefields).
std::string shown_url(const std::string& url);
// Percent-encoding of a URL query value or path segment.
std::string url_escape(const std::string& s);

// The value of parameter `name` (case-insensitive) in a header value such as
// `multipart/related; type="application/dicom"; boundary=abc` (quotes removed, "" when absent),
// and the media type before the first ';', lower-cased and trimmed.
std::string header_parameter(const std::string& value, const std::string& name);
std::string media_type(const std::string& value);

}  // namespace sagitta::dicom::detail
