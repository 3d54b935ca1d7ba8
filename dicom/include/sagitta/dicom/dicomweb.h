#pragma once
// A DICOMweb client (PS3.18) over HTTP(S): QIDO-RS search, WADO-RS retrieval of a study or series,
// STOW-RS storage. The DIMSE client's counterpart (sagitta/dicom/pacs.h), with the same query,
// retrieve and store result types.
//
// Security: TLS certificates and host names are always verified (`ca_file` adds a CA bundle in
// place of the system's; there is no switch to turn verification off). Redirects are followed at
// most `max_redirects` times, never from https to http, and credentials are never sent to another
// host. Credentials may come from the environment (`with_environment`), so they need not appear on
// a command line; they never appear in messages.
//
// Retrieval asks for `multipart/related; type="application/dicom"; transfer-syntax=*`, so the server
// sends each instance as stored (JPEG 2000 stays JPEG 2000); parts land in a hidden staging folder
// and are moved into the output folder, named <SOPInstanceUID>.dcm, only when the whole answer was
// read and every part is a DICOM file. Stores check every file (readable DICOM Part 10 with study,
// series and SOP UIDs) before sending any. Failures throw DicomError: one line with the method, the
// URL and the HTTP status or transport error, or what was wrong with the answer.
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/pacs.h"

namespace sagitta::dicom {

struct DicomWebServer {
  std::string url;  // the service's base URL, e.g. http://127.0.0.1:8042/dicom-web
  std::string user, password;  // HTTP basic authentication (when user is set)
  std::string token;           // bearer token (Authorization: Bearer ...), instead of basic
  std::string ca_file;         // PEM CA bundle for https (empty: the system's)
  int connect_timeout_s = 10;  // TCP and TLS connection
  int timeout_s = 3600;        // a whole request, transfer included
  int stall_timeout_s = 60;    // no byte received for this long: give up
  int max_redirects = 5;
};

// The environment variables `with_environment` reads.
inline constexpr const char* kDicomWebUserVariable = "SAGITTA_DICOMWEB_USER";
inline constexpr const char* kDicomWebPasswordVariable = "SAGITTA_DICOMWEB_PASSWORD";
inline constexpr const char* kDicomWebTokenVariable = "SAGITTA_DICOMWEB_TOKEN";

// `server` with credentials completed from SAGITTA_DICOMWEB_USER / _PASSWORD / _TOKEN: with
// neither user nor token given, all three are read; with a user given, only the password; with
// a token given, nothing. Throws DicomError when both a user and a token end up set.
DicomWebServer with_environment(DicomWebServer server);

// `url` without a user:password@ part, for messages and reports.
std::string without_credentials(const std::string& url);

// QIDO-RS: /studies, /series or /instances (below /studies/{uid} when the keys hold a
// StudyInstanceUID, as every server supports that) matching `keys` (keyword -> value; "" asks for
// the attribute with includefield; "limit", "offset" and "fuzzymatching" pass as QIDO-RS's own
// parameters, for servers that page their answers). The level's default attributes are always
// asked for. Each match maps keyword -> value (multiple values joined by '\', person names by
// their alphabetic form, numbers as written). QueryLevel::Patient is refused (DICOMweb has no
// patient level). `progress` is polled with (0, 0) while the answer is awaited; returning false cancels.
std::vector<QueryMatch> qido_search(const DicomWebServer& server, QueryLevel level, const QueryKeys& keys,
                                    const PacsProgress& progress = {});

// WADO-RS of a study (keys: StudyInstanceUID) or series (and SeriesInstanceUID) into `out_dir`
// (created if needed). `progress` is called after each instance with (done, 0), and polled with
// the same while data is awaited; returning false cancels (nothing is left in `out_dir`).
RetrieveResult wado_retrieve(const DicomWebServer& server, const QueryKeys& keys, const std::filesystem::path& out_dir,
                             const PacsProgress& progress = {});

// STOW-RS of DICOM files (folders are searched recursively) to /studies in one request. A
// response naming failed instances (FailedSOPSequence) throws DicomError listing them with their
// failure reasons; warnings (e.g. coerced attributes) go to StoreResult::warnings. `progress` is
// called with (files sent, files) as the body goes out and polled while the answer is awaited.
StoreResult stow_store(const DicomWebServer& server, const std::vector<std::filesystem::path>& inputs,
                       const PacsProgress& progress = {});

}  // namespace sagitta::dicom
