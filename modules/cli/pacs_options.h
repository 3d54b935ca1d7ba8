#pragma once
// The network options: a PACS (host, port, AE titles, timeouts) and a DICOMweb server (credentials,
// CA bundle, timeouts, redirects), shared by `sagitta pacs`, `sagitta dicomweb` and
// `sagitta segment --pacs/--dicomweb`; and the query keys `pacs find` and `dicomweb query` share.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "parameter_table.h"
#include "sagitta/dicom/dicomweb.h"
#include "sagitta/dicom/pacs.h"

namespace sagitta::cli {

// Parameters pacs_host, pacs_port, pacs_aec, pacs_aet, pacs_timeout, pacs_dimse_timeout.
std::vector<Parameter> pacs_peer_parameters();
// The peer those parameters describe.
sagitta::dicom::PacsPeer pacs_peer(const Arguments& a);
// "AE@host:port" (e.g. ORTHANC@127.0.0.1:4242) -> called AE, host, port of `peer`; throws
// DicomError for anything else.
void parse_pacs_address(const std::string& address, sagitta::dicom::PacsPeer& peer);

// Parameters dicomweb_user, dicomweb_password, dicomweb_token, dicomweb_ca_file,
// dicomweb_connect_timeout, dicomweb_timeout, dicomweb_max_redirects (the URL is the command's).
std::vector<Parameter> dicomweb_server_parameters();
// The server at `url` those parameters describe, credentials completed from the environment
// (SAGITTA_DICOMWEB_USER / _PASSWORD / _TOKEN).
sagitta::dicom::DicomWebServer dicomweb_server(const Arguments& a, const std::string& url);

// Parameters study, series, patient_id, modality, keys: what to match or retrieve.
std::vector<Parameter> query_key_parameters();
// The keys those parameters give (--keys "Keyword=value;..." included); throws DicomError for a
// pair without '='.
sagitta::dicom::QueryKeys query_keys(const Arguments& a);

// A retrieval's report (files, completed, transfer syntaxes) into `out`, and one line on stdout
// unless `json`: "retrieved N <noun> into <folder> (transfer syntaxes: ...)".
void report_retrieval(const sagitta::dicom::RetrieveResult& r, const std::string& folder, const std::string& noun,
                      bool json, nlohmann::json& out);

}  // namespace sagitta::cli
