#include "support/dicom_fixups.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>

#include <utility>

namespace sagitta::testing {

std::filesystem::path copy_with_sop_uids(const std::filesystem::path& source, const std::filesystem::path& target) {
  DcmFileFormat ff;
  if (ff.loadFile(source.c_str()).bad()) return {};
  DcmDataset& dataset = *ff.getDataset();
  DcmMetaInfo& meta = *ff.getMetaInfo();
  const std::pair<DcmTagKey, DcmTagKey> uids[] = {{DCM_SOPClassUID, DCM_MediaStorageSOPClassUID},
                                                  {DCM_SOPInstanceUID, DCM_MediaStorageSOPInstanceUID}};
  for (const auto& [tag, meta_tag] : uids) {
    OFString value;
    if (dataset.findAndGetOFString(tag, value).good() && !value.empty()) continue;
    meta.findAndGetOFString(meta_tag, value);
    dataset.putAndInsertString(tag, value.c_str());
  }
  if (ff.saveFile(target.c_str(), EXS_Unknown).bad()) return {};
  return target;
}

}  // namespace sagitta::testing
