#pragma once
// Float maps (Grad-CAM heatmaps, class probabilities, uncertainty) as DICOM Parametric Map
// objects (DCMTK dcmpmap; Debian's DCMTK 3.6.7 ships it): 32-bit float frames on the source
// grid, each referencing its source image, with a real world value mapping that names the
// quantity and its units. PACS viewers that cannot show a Parametric Map show the RGB secondary
// capture (secondary_capture.h) of the same overlay instead.
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/load.h"
#include "sagitta/dicom/seg.h"
#include "sagitta/dicom/series_info.h"

namespace sagitta::dicom {

struct ParametricMapOptions {
  // What the values are. No standard code exists for "Grad-CAM heatmap", so the default is a
  // private code (a coding scheme designator starting with "99" is the standard's way).
  CodedConcept quantity{"GRADCAM", "99SAGITTA", "Grad-CAM class activation"};
  CodedConcept units{"1", "UCUM", "no units"};  // UCUM "1": dimensionless
  std::string label = "HEATMAP";                // LUT Label (<= 16 characters)
  std::string algorithm_name = "Sagitta", algorithm_version = "1";
  std::string series_description = "Sagitta heatmap";
  int series_number = 0;  // 0: the source's series number + 2000
  std::string software_version = "sagitta";
};

struct ParametricMapResult {
  std::string sop_instance_uid, series_instance_uid;
  std::vector<std::string> notes;  // what had to be made up because the source lacks it (UIDs)
  std::size_t frames = 0;
};

// Writes `map` (on `source_grid`, the grid of the series described by `source`), one frame per
// slice. Atomic (temporary name, then rename). Throws DicomError when the geometry does not match
// or the file cannot be written.
ParametricMapResult write_parametric_map(const Image& map, const itk::ImageBase<3>& source_grid, const SeriesInfo& source,
                                         const std::filesystem::path& out, const ParametricMapOptions& options = {});

}  // namespace sagitta::dicom
