#pragma once
// The files of a transfer, shared by the DIMSE client (pacs.cpp) and the DICOMweb client
// (dicomweb.cpp): what is checked before a store sends anything, and how a retrieval's objects
// are staged and published. Internal to sagitta::dicom.
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/pacs.h"

namespace sagitta::dicom::detail {

// One object to store, as read from its file.
struct StoreItem {
  std::filesystem::path path;
  std::string sop_class, sop_instance, syntax;
  bool part10 = false;  // starts with the 128-byte preamble and "DICM" (a file meta header)
};

// The files given and every visible file under the folders given (sorted per folder), each a
// readable DICOM file with SOP class, SOP instance, study and series UIDs; throws DicomError
// ("store: ...; nothing was sent") for the first that is not.
std::vector<StoreItem> read_store_items(const std::vector<std::filesystem::path>& inputs);

// A hidden folder `.sagitta-retrieve-partial-<pid>` inside `out_dir` (created if needed) that
// receives a retrieval; removed with everything in it when the object goes, and `out_dir` too
// when it was created here and is still empty (a failed retrieval leaves nothing).
struct RetrieveStaging {
  std::filesystem::path dir, out_dir;
  bool created = false;
  explicit RetrieveStaging(const std::filesystem::path& out_dir);
  ~RetrieveStaging();
  RetrieveStaging(const RetrieveStaging&) = delete;
  RetrieveStaging& operator=(const RetrieveStaging&) = delete;
};

// True when `path` is a DICOM file whose meta information DCMTK reads.
bool is_dicom_file(const std::filesystem::path& path);

// Checks every file of `staging` is DICOM (a meta header naming the SOP instance), then moves
// them into `out_dir` as <SOPInstanceUID>.dcm; records the paths and transfer syntaxes in
// `result`. Throws DicomError "<file>: received an unreadable object" before moving anything.
void publish_retrieved(const std::filesystem::path& staging, const std::filesystem::path& out_dir, RetrieveResult& result);

}  // namespace sagitta::dicom::detail
