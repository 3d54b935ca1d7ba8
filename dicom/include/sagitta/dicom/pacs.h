#pragma once
// A DICOM network client (DCMTK dcmnet): C-ECHO, C-FIND, C-GET, C-MOVE (with a temporary storage
// SCP for the returning association) and C-STORE against a PACS.
//
// Transfer syntaxes: retrieval proposes every syntax Sagitta can decode (JPEG 2000 through its
// OpenJPEG codec, JPEG, JPEG-LS, RLE, deflated and uncompressed) and stores what arrives as-is,
// bit for bit; decoding happens when the files are loaded. Storing proposes each file's own
// transfer syntax plus explicit and implicit little endian, and sends the file unchanged when
// the peer accepts its syntax (otherwise decompressed to little endian).
//
// Every failure (refused association, unknown AE title, timeout, a failed status) throws
// DicomError naming the peer and what it said. Retrievals land in a hidden staging folder and
// are moved into the output folder only when the whole retrieval succeeded; stores check that
// every file can be sent (readable, an accepted presentation context) before sending any.
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sagitta::dicom {

struct PacsPeer {
  std::string host = "127.0.0.1";
  int port = 104;
  std::string called_ae = "ANY-SCP";  // the PACS' AE title
  std::string calling_ae = "SAGITTA";  // ours
  int connect_timeout_s = 10;  // TCP connection
  int acse_timeout_s = 30;     // association negotiation and release
  int dimse_timeout_s = 60;    // each DIMSE message (a silent peer fails after this)
};

enum class QueryLevel { Patient, Study, Series, Image };
QueryLevel query_level_from_string(const std::string& level);  // "patient", "study", "series", "image"

// Query keys by DICOM keyword ("PatientID", "StudyInstanceUID", "Modality"...): a value to
// match (wildcards * and ? allowed where DICOM allows), or "" to have the attribute returned.
using QueryKeys = std::map<std::string, std::string>;
// The attributes a find (C-FIND or QIDO-RS) at `level` always asks for, by keyword.
std::vector<std::string> default_query_keys(QueryLevel level);
// One C-FIND match: keyword -> value (multiple values joined by '\').
using QueryMatch = std::map<std::string, std::string>;

// Called after each object: (done, total or 0 when unknown); return false to cancel.
using PacsProgress = std::function<bool(std::size_t done, std::size_t total)>;

// C-ECHO. Throws DicomError when the peer cannot be reached or refuses.
void pacs_echo(const PacsPeer& peer);

// C-FIND with the Study Root model (Patient Root for patient level). The level's unique key and
// a few descriptive keys are always requested.
std::vector<QueryMatch> pacs_find(const PacsPeer& peer, QueryLevel level, const QueryKeys& keys);

struct RetrieveResult {
  std::vector<std::filesystem::path> files;  // in the output folder, named <SOPInstanceUID>.dcm
  std::size_t completed = 0, failed = 0, warnings = 0;
  std::vector<std::string> transfer_syntaxes;  // distinct syntaxes received
};

// C-GET of a study / series / instance (keys: StudyInstanceUID and optionally SeriesInstanceUID,
// SOPInstanceUID) into `out_dir` (created if needed) over one association.
RetrieveResult pacs_get(const PacsPeer& peer, QueryLevel level, const QueryKeys& keys, const std::filesystem::path& out_dir,
                        const PacsProgress& progress = {});

// C-MOVE to ourselves: listens on `listen_port` with AE title `peer.calling_ae` (the PACS must
// know that AE title with this host and port) and writes what arrives into `out_dir`.
RetrieveResult pacs_move(const PacsPeer& peer, QueryLevel level, const QueryKeys& keys, const std::filesystem::path& out_dir,
                         int listen_port, const PacsProgress& progress = {});

struct StoreResult {
  std::size_t sent = 0;
  std::vector<std::string> sop_instance_uids;
  std::vector<std::string> warnings;  // e.g. instances decompressed for a peer refusing their syntax
};

// C-STORE of DICOM files (folders are searched recursively).
StoreResult pacs_store(const PacsPeer& peer, const std::vector<std::filesystem::path>& inputs,
                       const PacsProgress& progress = {});

}  // namespace sagitta::dicom
