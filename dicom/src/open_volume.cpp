// open_volume: a DICOM folder (scan, select, load) or a volume file (see open_volume.h).
#include "sagitta/dicom/open_volume.h"

#include <fmt/format.h>

#include "sagitta/core/volume_io.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/report_json.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;

OpenedVolume open_volume(const fs::path& path, const OpenOptions& options) {
  OpenedVolume in;
  if (fs::is_directory(path)) {
    ScanOptions so;
    so.threads = options.threads;
    const auto scan = dicom::scan({path}, so);
    const Stack& stack = select_stack(scan, options.series);
    LoadOptions lo;
    lo.threads = options.threads;
    auto loaded = load(stack, lo);
    if (options.single_volume && loaded.volumes.size() != 1)
      throw DicomError(fmt::format("{}: stack {} has {} volumes (a time series); {} one volume at a time", path.string(),
                                   stack.id, loaded.volumes.size(), options.purpose));
    in.volume = loaded.volumes.front();
    in.info = loaded.info;
    in.modality = stack.info.modality;
    in.description = {{"path", path.string()}, {"kind", "dicom"}, {"stack", to_json(stack)}};
    in.decisions = scan.decisions;
    in.decisions.insert(in.decisions.end(), loaded.decisions.begin(), loaded.decisions.end());
  } else if (fs::exists(path)) {
    in.volume = read_volume(path);
    in.description = {{"path", path.string()}, {"kind", "volume"}};
  } else {
    throw DicomError(path.string() + ": no such file or folder");
  }
  in.description["geometry"] = geometry_json(*in.volume);
  return in;
}

}  // namespace sagitta::dicom
