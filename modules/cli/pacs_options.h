#pragma once
// The PACS connection options (host, port, AE titles, timeouts), shared by `sagitta pacs` and
// `sagitta segment --pacs`.
#include <string>
#include <vector>

#include "parameter_table.h"
#include "sagitta/dicom/pacs.h"

namespace sagitta::cli {

// Parameters pacs_host, pacs_port, pacs_aec, pacs_aet, pacs_timeout, pacs_dimse_timeout.
std::vector<Parameter> pacs_peer_parameters();
// The peer those parameters describe.
sagitta::dicom::PacsPeer pacs_peer(const Arguments& a);
// "AE@host:port" (e.g. ORTHANC@127.0.0.1:4242) -> called AE, host, port of `peer`; throws
// DicomError for anything else.
void parse_pacs_address(const std::string& address, sagitta::dicom::PacsPeer& peer);

}  // namespace sagitta::cli
