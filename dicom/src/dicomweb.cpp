// The DICOMweb client (PS3.18): QIDO-RS, WADO-RS and STOW-RS over the one HTTP client (http.h),
// with DICOM JSON (PS3.18 annex F) read by nlohmann-json and DCMTK's data dictionary for keywords.
#include "sagitta/dicom/dicomweb.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctag.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>

#include "http.h"
#include "sagitta/dicom/codecs.h"
#include "multipart.h"
#include "sagitta/dicom/error.h"
#include "transfer_files.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::size_t kMaxJsonBytes = 256u << 20;
constexpr const char* kDicomJson = "application/dicom+json";

std::string base_url(const DicomWebServer& s) {
  std::string url = s.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
    throw DicomError(fmt::format("DICOMweb URL '{}': give an http:// or https:// URL, e.g. http://127.0.0.1:8042/dicom-web",
                                 detail::redacted_url(s.url)));
  return url;
}

// "0020000D" -> keyword from DCMTK's dictionary ("StudyInstanceUID"), or the tag as written.
std::string keyword_of(const std::string& tag) {
  if (tag.size() != 8) return tag;
  try {
    const unsigned long v = std::stoul(tag, nullptr, 16);
    DcmTag t(static_cast<Uint16>(v >> 16), static_cast<Uint16>(v & 0xFFFF));
    const char* name = t.getTagName();
    if (name && std::string(name) != DcmTag_ERROR_TagName) return name;
  } catch (const std::exception&) {
  }
  return tag;
}

void check_keyword(const std::string& keyword) {
  DcmTag tag;
  if (DcmTag::findTagFromName(keyword.c_str(), tag).bad())
    throw DicomError(fmt::format("query key '{}' is not a DICOM keyword (e.g. PatientID, StudyInstanceUID)", keyword));
}

// One attribute's values, joined by '\' (person names by their alphabetic group); nullopt for
// sequences and bulk data, which a match does not carry.
std::optional<std::string> attribute_text(const json& attribute) {
  if (!attribute.is_object()) throw DicomError("an attribute is not a JSON object");
  if (const auto vr = attribute.find("vr"); vr != attribute.end() && *vr == "SQ") return std::nullopt;
  if (attribute.contains("BulkDataURI") || attribute.contains("InlineBinary")) return std::nullopt;
  const auto values = attribute.find("Value");
  if (values == attribute.end()) return std::string();  // present but empty
  if (!values->is_array()) throw DicomError("an attribute's Value is not an array");
  std::string out;
  for (std::size_t i = 0; i < values->size(); ++i) {
    const json& v = (*values)[i];
    if (i) out += '\\';
    if (v.is_string()) {
      out += v.get<std::string>();
    } else if (v.is_number()) {
      out += v.dump();
    } else if (v.is_object()) {  // a person name: its groups
      if (const auto a = v.find("Alphabetic"); a != v.end() && a->is_string()) out += a->get<std::string>();
    } else if (!v.is_null()) {
      throw DicomError("an attribute value is neither text, number nor person name");
    }
  }
  return out;
}

QueryMatch match_of(const json& object) {
  if (!object.is_object()) throw DicomError("a match is not a JSON object");
  QueryMatch m;
  for (const auto& [tag, attribute] : object.items())
    if (auto text = attribute_text(attribute)) m[keyword_of(tag)] = *text;
  return m;
}

json parse_json(const std::string& body, const std::string& where) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {  // its what() quotes the bytes read, which may be binary
    throw DicomError(fmt::format("{}: the answer is not JSON (syntax error at byte {} of {})", where, e.byte, body.size()));
  }
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : sep) + p;
  return s;
}

// A sink that keeps a JSON answer in memory, refusing other media types and huge answers.
detail::HttpSink json_sink(std::string& body, const std::string& where) {
  return [&body, where](const detail::HttpResponse& head, const char* data, std::size_t size) {
    if (body.empty()) {
      const std::string type = detail::media_type(head.content_type);
      if (type != kDicomJson && type != "application/json")
        throw DicomError(fmt::format("{}: the server answered '{}', not DICOM JSON ({})", where,
                                     head.content_type.empty() ? "no content type" : head.content_type, kDicomJson));
    }
    if (body.size() + size > kMaxJsonBytes) throw DicomError(fmt::format("{}: the answer exceeds 256 MiB", where));
    body.append(data, size);
  };
}

const char* failure_reason(long code) {
  switch (code) {
    case 0x0110: return "processing failure";
    case 0x0122: return "SOP class not supported";
    case 0x0124: return "not authorised";
    case 0xA700: return "out of resources";
    case 0xA900: return "data set does not match SOP class";
    case 0xC000: return "cannot understand";
    case 0xC122: return "transfer syntax not supported";
    case 0xA770: return "transfer syntax not supported";
    case 0xC123: return "already stored, not replaced";
    default: return "refused";
  }
}

// The SOP instance UIDs and reasons in a STOW-RS answer's sequence `tag` (FailedSOPSequence,
// ReferencedSOPSequence).
std::vector<std::pair<std::string, long>> sop_sequence(const json& answer, const char* tag, const char* reason_tag) {
  std::vector<std::pair<std::string, long>> out;
  if (!answer.is_object() || !answer.contains(tag)) return out;
  const json& seq = answer[tag];
  if (!seq.is_object() || !seq.contains("Value") || !seq["Value"].is_array()) return out;
  for (const json& item : seq["Value"]) {
    if (!item.is_object()) continue;
    std::string uid = "(unnamed instance)";
    if (item.contains("00081155"))
      if (auto t = attribute_text(item["00081155"]); t && !t->empty()) uid = *t;
    long reason = -1;
    if (item.contains(reason_tag))
      if (auto t = attribute_text(item[reason_tag]); t && !t->empty()) reason = std::strtol(t->c_str(), nullptr, 10);
    out.emplace_back(uid, reason);
  }
  return out;
}

}  // namespace

std::string without_credentials(const std::string& url) { return detail::redacted_url(url); }

DicomWebServer with_environment(DicomWebServer server) {
  auto from = [](std::string& field, const char* name) {
    if (field.empty())
      if (const char* v = std::getenv(name)) field = v;
  };
  // What the caller gave wins: a user takes only a password from the environment, a token
  // nothing; neither takes everything there is.
  const bool given_user = !server.user.empty(), given_token = !server.token.empty();
  if (!given_token) from(server.user, kDicomWebUserVariable);
  if (!given_token) from(server.password, kDicomWebPasswordVariable);
  if (!given_user && !given_token) from(server.token, kDicomWebTokenVariable);
  if (!server.user.empty() && !server.token.empty())
    throw DicomError(fmt::format("DICOMweb: give a user and password or a bearer token, not both (check {} and {})",
                                 kDicomWebUserVariable, kDicomWebTokenVariable));
  return server;
}

std::vector<QueryMatch> qido_search(const DicomWebServer& server, QueryLevel level, const QueryKeys& keys,
                                    const PacsProgress& progress) {
  if (level == QueryLevel::Patient)
    throw DicomError("QIDO-RS has no patient level: search studies with PatientID or PatientName instead");
  std::string path = base_url(server);
  QueryKeys rest = keys;
  const auto study = keys.find("StudyInstanceUID");
  const bool study_in_path = level != QueryLevel::Study && study != keys.end() && !study->second.empty() &&
                             study->second.find_first_of("*?\\") == std::string::npos;
  if (study_in_path) {
    path += "/studies/" + detail::url_escape(study->second);
    rest.erase("StudyInstanceUID");
  }
  path += level == QueryLevel::Study ? "/studies" : level == QueryLevel::Series ? "/series" : "/instances";

  std::vector<std::string> query;
  for (const auto& k : default_query_keys(level))
    if (!rest.count(k) && !(study_in_path && k == "StudyInstanceUID")) rest[k] = "";
  for (const auto& [keyword, value] : rest) {
    if (keyword == "limit" || keyword == "offset" || keyword == "fuzzymatching") {  // QIDO-RS's own parameters
      if (value.empty()) throw DicomError(fmt::format("QIDO-RS parameter '{}' needs a value", keyword));
      query.push_back(keyword + "=" + detail::url_escape(value));
      continue;
    }
    check_keyword(keyword);
    query.push_back(value.empty() ? "includefield=" + keyword : keyword + "=" + detail::url_escape(value));
  }
  const std::string url = path + (query.empty() ? "" : "?" + join(query, "&"));

  std::string body;
  const std::string where = "QIDO-RS GET " + detail::shown_url(url);
  detail::HttpRequest request;
  request.url = url;
  request.headers = {std::string("Accept: ") + kDicomJson};
  detail::http_request(server, request, json_sink(body, where), "QIDO-RS", [&] { return progress && !progress(0, 0); });
  if (body.empty()) return {};  // 204 No Content: no matches
  const json answer = parse_json(body, where);
  if (!answer.is_array()) throw DicomError(fmt::format("{}: the answer is not a JSON array of matches", where));
  std::vector<QueryMatch> matches;
  try {
    for (const json& object : answer) {
      QueryMatch m = match_of(object);
      if (study_in_path && !m.count("StudyInstanceUID")) m["StudyInstanceUID"] = study->second;
      matches.push_back(std::move(m));
    }
  } catch (const DicomError& e) {
    throw DicomError(fmt::format("{}: not DICOM JSON: {}", where, e.what()));
  } catch (const json::exception& e) {
    throw DicomError(fmt::format("{}: not DICOM JSON (json error {})", where, e.id));
  }
  return matches;
}

RetrieveResult wado_retrieve(const DicomWebServer& server, const QueryKeys& keys, const fs::path& out_dir,
                             const PacsProgress& progress) {
  auto key = [&](const char* k) {
    const auto it = keys.find(k);
    return it == keys.end() ? std::string() : it->second;
  };
  if (key("StudyInstanceUID").empty()) throw DicomError("WADO-RS: a StudyInstanceUID is needed");
  std::string url = base_url(server) + "/studies/" + detail::url_escape(key("StudyInstanceUID"));
  if (!key("SeriesInstanceUID").empty()) url += "/series/" + detail::url_escape(key("SeriesInstanceUID"));
  if (!key("SOPInstanceUID").empty()) {
    if (key("SeriesInstanceUID").empty()) throw DicomError("WADO-RS: an instance needs its SeriesInstanceUID too");
    url += "/instances/" + detail::url_escape(key("SOPInstanceUID"));
  }
  const std::string where = "WADO-RS GET " + detail::shown_url(url);
  register_codecs();  // also silences DCMTK's logging: problems reach the user once, as DicomError

  detail::RetrieveStaging staging(out_dir);
  std::unique_ptr<detail::MultipartReader> reader;
  std::ofstream part;
  fs::path part_path;
  std::size_t done = 0, part_bytes = 0;
  long long announced = -1;  // the part's Content-Length, when it has one
  detail::MultipartReader::Handlers handlers;
  handlers.begin = [&](std::size_t index, const detail::MultipartReader::Headers& headers) {
    const auto type = headers.find("content-type");
    if (type != headers.end() && detail::media_type(type->second) != "application/dicom")
      throw DicomError(fmt::format("part {} is '{}', not application/dicom", index + 1, type->second));
    announced = -1;
    part_bytes = 0;
    if (const auto length = headers.find("content-length"); length != headers.end()) {
      char* end = nullptr;
      announced = std::strtoll(length->second.c_str(), &end, 10);
      if (end == length->second.c_str() || *end != '\0' || announced < 0)
        throw DicomError(fmt::format("part {} has a bad Content-Length '{}'", index + 1, length->second));
    }
    part_path = staging.dir / fmt::format("part-{:06}.dcm", index + 1);
    part.open(part_path, std::ios::binary | std::ios::trunc);
    if (!part) throw DicomError(fmt::format("cannot write {}", part_path.string()));
  };
  handlers.data = [&](const char* data, std::size_t size) {
    part_bytes += size;
    if (!part.write(data, static_cast<std::streamsize>(size))) throw DicomError(fmt::format("cannot write {}", part_path.string()));
  };
  handlers.end = [&](std::size_t index) {
    part.close();
    if (!part) throw DicomError(fmt::format("cannot write {}", part_path.string()));
    if (announced >= 0 && static_cast<long long>(part_bytes) != announced)
      throw DicomError(fmt::format("part {} has {} bytes, its Content-Length says {}", index + 1, part_bytes, announced));
    if (!detail::is_dicom_file(part_path))
      throw DicomError(fmt::format("part {} is not a DICOM file (no readable file meta information)", index + 1));
    done = index + 1;
    if (progress && !progress(done, 0)) throw DicomError("cancelled");
  };
  auto sink = [&](const detail::HttpResponse& head, const char* data, std::size_t size) {
    if (!reader) {
      const std::string boundary = detail::header_parameter(head.content_type, "boundary");
      const std::string type = detail::header_parameter(head.content_type, "type");
      if (detail::media_type(head.content_type) != "multipart/related" || boundary.empty() ||
          (!type.empty() && detail::media_type(type) != "application/dicom"))
        throw DicomError(fmt::format("the server answered '{}', not multipart/related; type=\"application/dicom\" with a "
                                     "boundary",
                                     head.content_type.empty() ? "no content type" : head.content_type));
      reader = std::make_unique<detail::MultipartReader>(boundary, handlers);
    }
    reader->feed(data, size);
  };
  RetrieveResult result;
  try {
    const std::string accept = "Accept: multipart/related; type=\"application/dicom\"; transfer-syntax=*";
    detail::HttpRequest request;
    request.url = url;
    request.headers = {accept};
    detail::http_request(server, request, sink, "WADO-RS", [&] { return progress && !progress(done, 0); });
    if (!reader) throw DicomError("the server answered with an empty body");
    reader->finish();
    if (reader->parts() == 0) throw DicomError("the answer holds no instances");
    detail::publish_retrieved(staging.dir, out_dir, result);
  } catch (const detail::HttpError&) {
    throw;
  } catch (const DicomError& e) {
    const std::string what = e.what();
    if (what.rfind("WADO-RS", 0) == 0) throw;
    throw DicomError(fmt::format("{}: {}", where, what));
  }
  result.completed = result.files.size();
  return result;
}

StoreResult stow_store(const DicomWebServer& server, const std::vector<fs::path>& inputs, const PacsProgress& progress) {
  const std::string url = base_url(server) + "/studies";
  const std::string where = "STOW-RS POST " + detail::shown_url(url);
  register_codecs();  // as above
  const std::vector<detail::StoreItem> items = detail::read_store_items(inputs);
  std::vector<fs::path> files;
  for (const auto& i : items) {
    if (!i.part10)
      throw DicomError(fmt::format("store: {} has no DICOM file meta header (Part 10); STOW-RS sends files as they are: "
                                   "rewrite it first (e.g. dcmconv); nothing was sent",
                                   i.path.string()));
    files.push_back(i.path);
  }
  const std::string boundary = detail::random_boundary();
  detail::MultipartFileBody body(files, boundary, "application/dicom");
  bool cancelled = false;
  std::size_t sent = 0;
  body.on_file_done = [&](std::size_t done) {
    sent = done;
    if (progress && !progress(done, files.size())) cancelled = true;
  };
  detail::HttpRequest request;
  request.method = "POST";
  request.url = url;
  request.headers = {fmt::format("Content-Type: multipart/related; type=\"application/dicom\"; boundary={}", boundary),
                     std::string("Accept: ") + kDicomJson};
  request.body_size = body.size();
  request.body = [&](char* buffer, std::size_t size) { return body.read(buffer, size); };
  request.rewind = [&] { body.rewind(); };

  std::string answer_text;
  long status = 0;
  try {
    status = detail::http_request(server, request, json_sink(answer_text, where), "STOW-RS", [&] {
               return cancelled || (progress && !progress(sent, files.size()));
             }).status;
  } catch (const detail::HttpError& e) {
    // 409 Conflict (and 400) come with the failed instances in DICOM JSON: name them.
    if (e.body.empty() || detail::media_type(e.content_type).find("json") == std::string::npos) throw;
    bool names_failures = false;
    try {
      names_failures = !sop_sequence(json::parse(e.body), "00081198", "00081197").empty();
    } catch (const std::exception&) {  // not JSON, not DICOM JSON: the HTTP status says it all
    }
    if (!names_failures) throw;
    answer_text = e.body;
    status = e.status;
  }
  const json answer = answer_text.empty() ? json::object() : parse_json(answer_text, where);
  std::vector<std::pair<std::string, long>> failed, stored;
  try {
    failed = sop_sequence(answer, "00081198", "00081197");
    stored = sop_sequence(answer, "00081199", "00081196");
  } catch (const std::exception& e) {  // DicomError or json::exception
    throw DicomError(fmt::format("{}: HTTP {}: the answer is not a STOW-RS response in DICOM JSON ({})", where, status,
                                 e.what()));
  }
  if (!failed.empty()) {
    std::vector<std::string> named;
    for (std::size_t i = 0; i < failed.size() && i < 5; ++i)
      named.push_back(failed[i].second >= 0 ? fmt::format("{} (0x{:04X} {})", failed[i].first, failed[i].second,
                                                          failure_reason(failed[i].second))
                                            : failed[i].first);
    if (failed.size() > 5) named.push_back(fmt::format("and {} more", failed.size() - 5));
    throw DicomError(fmt::format("{}: HTTP {}: the server refused {} of {} instances: {}", where, status, failed.size(),
                                 items.size(), join(named, ", ")));
  }
  StoreResult result;
  for (const auto& [uid, warning] : stored) {
    result.sop_instance_uids.push_back(uid);
    if (warning >= 0) result.warnings.push_back(fmt::format("{}: stored with warning 0x{:04X}", uid, warning));
  }
  if (stored.empty())  // a server that answers without a body: trust the 2xx
    for (const auto& i : items) result.sop_instance_uids.push_back(i.sop_instance);
  else if (stored.size() != items.size())
    result.warnings.push_back(fmt::format("the server lists {} of the {} instances sent as stored", stored.size(), items.size()));
  result.sent = items.size();
  return result;
}

}  // namespace sagitta::dicom
