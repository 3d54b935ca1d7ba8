// libcurl behind sagitta::dicom's DICOMweb client: one easy handle per request, redirects followed
// here (not by libcurl) so that every hop is checked: counted, never https -> http, credentials
// only to the origin the user named, a POST body rewound and sent again.
#include "http.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <memory>
#include <mutex>

#include "sagitta/dicom/error.h"
#include "ascii.h"

namespace sagitta::dicom::detail {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Url {
  std::string scheme, host, port;
};

// Scheme, host and port of `url` (empty when it does not parse).
Url parse_url(const std::string& url) {
  Url u;
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> h(curl_url(), curl_url_cleanup);
  if (!h || curl_url_set(h.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return u;
  auto part = [&](CURLUPart p, unsigned flags) {
    char* s = nullptr;
    std::string out;
    if (curl_url_get(h.get(), p, &s, flags) == CURLUE_OK && s) out = s;
    curl_free(s);
    return out;
  };
  u.scheme = detail::ascii_lower(part(CURLUPART_SCHEME, 0));
  u.host = detail::ascii_lower(part(CURLUPART_HOST, 0));
  u.port = part(CURLUPART_PORT, CURLU_DEFAULT_PORT);
  return u;
}

// What one transfer collects; the callbacks never let an exception cross libcurl.
struct Transfer {
  CURL* curl = nullptr;
  const HttpRequest* request = nullptr;
  const HttpSink* sink = nullptr;
  const std::function<bool()>* cancelled = nullptr;
  HttpResponse head;
  std::string status_line, location, error_body;
  bool status_known = false;
  std::exception_ptr failure;
};

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line = detail::trim_space(std::string(data, size * n));
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (1xx, a redirect, the final one)
    t->status_line = line;
    t->head.content_type.clear();
    t->location.clear();
  } else if (const auto colon = line.find(':'); colon != std::string::npos) {
    const std::string name = detail::ascii_lower(detail::trim_space(line.substr(0, colon)));
    if (name == "content-type") t->head.content_type = detail::trim_space(line.substr(colon + 1));
    if (name == "location") t->location = detail::trim_space(line.substr(colon + 1));
  }
  return size * n;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t bytes = size * n;
  if (!t->status_known) {
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->head.status);
    t->status_known = true;
  }
  if (t->head.status < 200 || t->head.status >= 300) {  // kept for the error message
    if (t->error_body.size() < 65536) t->error_body.append(data, std::min<std::size_t>(bytes, 65536 - t->error_body.size()));
    return bytes;
  }
  try {
    (*t->sink)(t->head, data, bytes);
  } catch (...) {
    t->failure = std::current_exception();
    return 0;  // aborts the transfer
  }
  return bytes;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  try {
    return t->request->body(buffer, size * n);
  } catch (...) {
    t->failure = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return (*t->cancelled && (*t->cancelled)()) ? 1 : 0;
}

// One line for libcurl's failure `rc`.
std::string transport_problem(CURLcode rc, const char* detail, const DicomWebServer& server) {
  const std::string why = detail && *detail ? detail : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_COULDNT_CONNECT: return fmt::format("cannot connect ({})", why);
    case CURLE_COULDNT_RESOLVE_HOST: return fmt::format("unknown host ({})", why);
    case CURLE_OPERATION_TIMEDOUT:
      return fmt::format("no answer in time ({}; connect {} s, total {} s, stall {} s)", why, server.connect_timeout_s,
                         server.timeout_s, server.stall_timeout_s);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
      return fmt::format("TLS verification failed ({}): the server's certificate must name this host and be signed by a "
                         "CA the system trusts or --ca-file gives",
                         why);
    case CURLE_SSL_CACERT_BADFILE: return fmt::format("cannot use the CA bundle ({})", why);
    case CURLE_UNSUPPORTED_PROTOCOL: return fmt::format("only http:// and https:// URLs are supported ({})", why);
    case CURLE_URL_MALFORMAT: return fmt::format("not a valid URL ({})", why);
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING: return fmt::format("the answer was cut off ({})", why);
    case CURLE_ABORTED_BY_CALLBACK: return "cancelled";
    default: return why;
  }
}

std::string status_problem(long status, const std::string& status_line) {
  // "HTTP/1.1 404 Not Found" -> "404 Not Found"
  std::string reason;
  if (const auto sp = status_line.find(' '); sp != std::string::npos) reason = detail::trim_space(status_line.substr(sp + 1));
  std::string s = "HTTP " + (reason.empty() ? std::to_string(status) : reason);
  if (status == 401)
    s += " (credentials missing or refused: --user/--password or --token, or the environment variables SAGITTA_DICOMWEB_USER, "
         "SAGITTA_DICOMWEB_PASSWORD, SAGITTA_DICOMWEB_TOKEN)";
  else if (status == 403)
    s += " (these credentials may not do this)";
  return s;
}

}  // namespace

std::string redacted_url(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const auto path = url.find_first_of("/?#", scheme + 3);
  const auto at = url.rfind('@', path == std::string::npos ? url.size() : path);
  if (at == std::string::npos || at < scheme) return url;
  return url.substr(0, scheme + 3) + url.substr(at + 1);
}

std::string shown_url(const std::string& url) {
  std::string s = redacted_url(url);
  const auto q = s.find('?');
  if (q != std::string::npos && s.size() - q > 100) s = s.substr(0, q + 97) + "...";
  return s;
}

std::string url_escape(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string media_type(const std::string& value) { return detail::ascii_lower(detail::trim_space(value.substr(0, value.find(';')))); }

std::string header_parameter(const std::string& value, const std::string& name) {
  std::size_t i = value.find(';');
  while (i != std::string::npos && i < value.size()) {
    ++i;
    const std::size_t eq = value.find('=', i);
    if (eq == std::string::npos) return {};
    const std::string key = detail::ascii_lower(detail::trim_space(value.substr(i, eq - i)));
    std::size_t j = eq + 1;
    while (j < value.size() && (value[j] == ' ' || value[j] == '\t')) ++j;
    std::string v;
    if (j < value.size() && value[j] == '"') {  // quoted-string, with backslash escapes
      for (++j; j < value.size() && value[j] != '"'; ++j) {
        if (value[j] == '\\' && j + 1 < value.size()) ++j;
        v += value[j];
      }
      i = value.find(';', j);
    } else {
      i = value.find(';', j);
      v = detail::trim_space(value.substr(j, i == std::string::npos ? std::string::npos : i - j));
    }
    if (key == detail::ascii_lower(name)) return v;
  }
  return {};
}

HttpResponse http_request(const DicomWebServer& server, const HttpRequest& request, const HttpSink& sink,
                          const std::string& what, const std::function<bool()>& cancelled) {
  global_init();
  const std::string shown = fmt::format("{} {} {}", what, request.method, shown_url(request.url));
  const Url origin = parse_url(request.url);
  if (origin.scheme != "http" && origin.scheme != "https")
    throw DicomError(fmt::format("{}: give an http:// or https:// URL", shown));
  if (!server.user.empty() && !server.token.empty())
    throw DicomError(fmt::format("{}: give a user and password or a bearer token, not both", shown));

  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> handle(curl_easy_init(), curl_easy_cleanup);
  if (!handle) throw DicomError(shown + ": cannot start libcurl");
  CURL* c = handle.get();
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr, curl_slist_free_all);
  for (const auto& h : request.headers) headers.reset(curl_slist_append(headers.release(), h.c_str()));
  headers.reset(curl_slist_append(headers.release(), "Expect:"));  // no 100-continue round trip

  std::string url = request.url;
  for (int hop = 0;; ++hop) {
    curl_easy_reset(c);
    Transfer t;
    t.curl = c;
    t.request = &request;
    t.sink = &sink;
    t.cancelled = &cancelled;
    char error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // followed below, hop by hop
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sagitta-dicomweb");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!server.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, server.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(server.connect_timeout_s));
    curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(server.timeout_s));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(server.stall_timeout_s));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    // Credentials go only to the scheme, host and port the user named.
    const Url here = parse_url(url);
    if (here.scheme == origin.scheme && here.host == origin.host && here.port == origin.port) {
      if (!server.token.empty()) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, server.token.c_str());
      } else if (!server.user.empty()) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, server.user.c_str());
        curl_easy_setopt(c, CURLOPT_PASSWORD, server.password.c_str());
      }
    }
    if (request.method == "POST") {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body_size));
      curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(c, CURLOPT_READDATA, &t);
    } else if (request.method != "GET") {
      throw DicomError(fmt::format("{}: unsupported method", shown));
    }

    const CURLcode rc = curl_easy_perform(c);
    if (t.failure) std::rethrow_exception(t.failure);
    if (rc != CURLE_OK) throw DicomError(fmt::format("{}: {}", shown, transport_problem(rc, error, server)));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t.head.status);
    t.head.effective_url = redacted_url(url);

    const long status = t.head.status;
    const bool redirect = status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
    if (redirect && !t.location.empty()) {
      char* next = nullptr;
      curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &next);  // Location resolved against the URL
      const std::string target = next ? next : "";
      if (hop + 1 > server.max_redirects)
        throw DicomError(fmt::format("{}: more than {} redirects (a redirect loop?)", shown, server.max_redirects));
      const Url to = parse_url(target);
      if (to.scheme != "http" && to.scheme != "https")
        throw DicomError(fmt::format("{}: redirected to a URL that is not http or https; refused", shown));
      if (parse_url(url).scheme == "https" && to.scheme != "https")
        throw DicomError(fmt::format("{}: redirected from https to plain http ({}); refused", shown, redacted_url(target)));
      url = target;
      if (request.method == "POST" && request.rewind) request.rewind();
      continue;
    }
    if (status < 200 || status >= 300)
      throw HttpError(fmt::format("{}: {}", shown, status_problem(status, t.status_line)), status, t.head.content_type,
                      t.error_body);
    return t.head;
  }
}

}  // namespace sagitta::dicom::detail
