// Shared by the DIMSE and DICOMweb clients: checking files before a store, staging and
// publishing a retrieval.
#include "transfer_files.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "nesting.h"
#include "sagitta/dicom/error.h"

namespace sagitta::dicom::detail {
namespace fs = std::filesystem;

namespace {

bool has_part10_header(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char head[132] = {0};
  in.read(head, sizeof head);
  return in.gcount() == 132 && std::string(head + 128, 4) == "DICM";
}

StoreItem read_store_item(const fs::path& p) {
  if (const auto problem = nesting_problem(p); !problem.empty())
    throw DicomError(fmt::format("store: {}: {}", p.string(), problem));
  DcmFileFormat f;
  if (f.loadFile(p.c_str(), EXS_Unknown, EGL_noChange, 256, ERM_autoDetect).bad())
    throw DicomError(fmt::format("store: {} is not a readable DICOM file", p.string()));
  OFString cls, inst, ts;
  f.getDataset()->findAndGetOFString(DCM_SOPClassUID, cls);
  f.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, inst);
  f.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts);
  if (ts.empty()) ts = DcmXfer(f.getDataset()->getOriginalXfer()).getXferID();
  if (cls.empty() || inst.empty())
    throw DicomError(fmt::format("store: {} has no SOP Class/Instance UID in its dataset; nothing was sent", p.string()));
  // A PACS files instances under their study and series: without those UIDs it refuses them,
  // so refuse before sending anything rather than after half of a series.
  OFString study, series;
  f.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, study);
  f.getDataset()->findAndGetOFString(DCM_SeriesInstanceUID, series);
  if (study.empty() || series.empty())
    throw DicomError(fmt::format("store: {} has no Study/Series Instance UID (anonymised?); nothing was sent", p.string()));
  return {p, cls.c_str(), inst.c_str(), ts.c_str(), has_part10_header(p)};
}

}  // namespace

// The files given and every visible file under the folders given (sorted per folder).
std::vector<StoreItem> read_store_items(const std::vector<fs::path>& inputs) {
  std::vector<StoreItem> items;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file() && e.path().filename().string().rfind('.', 0) != 0) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) items.push_back(read_store_item(f));
    } else if (fs::is_regular_file(in, ec)) {
      items.push_back(read_store_item(in));
    } else {
      throw DicomError(fmt::format("store: {}: no such file or folder", in.string()));
    }
  }
  if (items.empty()) throw DicomError("store: no DICOM files to send");
  return items;
}


// Moves every file of `staging` into `out_dir` as <SOPInstanceUID>.dcm; returns the new paths
// and the transfer syntaxes seen.
bool is_dicom_file(const fs::path& path) {
  DcmFileFormat f;
  return f.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 256, ERM_metaOnly).good();
}

void publish_retrieved(const fs::path& staging, const fs::path& out_dir, RetrieveResult& result) {
  std::set<std::string> syntaxes;
  std::vector<std::pair<fs::path, fs::path>> moves;
  for (const auto& e : fs::recursive_directory_iterator(staging)) {
    if (!e.is_regular_file()) continue;
    DcmFileFormat f;
    if (f.loadFile(e.path().c_str(), EXS_Unknown, EGL_noChange, 256, ERM_metaOnly).bad())
      throw DicomError(fmt::format("{}: received an unreadable object", e.path().string()));
    OFString uid, ts;
    f.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPInstanceUID, uid);
    f.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts);
    if (uid.empty()) uid = e.path().filename().c_str();
    syntaxes.insert(ts.c_str());
    moves.emplace_back(e.path(), out_dir / (std::string(uid.c_str()) + ".dcm"));
  }
  fs::create_directories(out_dir);
  for (const auto& [from, to] : moves) {
    fs::rename(from, to);
    result.files.push_back(to);
  }
  std::sort(result.files.begin(), result.files.end());
  result.transfer_syntaxes.assign(syntaxes.begin(), syntaxes.end());
}

RetrieveStaging::RetrieveStaging(const fs::path& out) : out_dir(out) {
  created = fs::create_directories(out_dir);
  dir = out_dir / fmt::format(".sagitta-retrieve-partial-{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
}

RetrieveStaging::~RetrieveStaging() {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (created && fs::is_empty(out_dir, ec) && !ec) fs::remove(out_dir, ec);
}


}  // namespace sagitta::dicom::detail
