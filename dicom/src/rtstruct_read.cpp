// RTSTRUCT -> label map: each ROI's closed planar contours filled slice by slice at voxel centres
// by the even-odd rule (holes given as separate contours cancel their outer contour).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "item_text.h"
#include "nesting.h"
#include "sagitta/core/contours.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/rtstruct.h"
#include "ascii.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;

namespace {

constexpr const char* kRtStructureSetStorage = "1.2.840.10008.5.1.4.1.1.481.3";
// How far (in slices) a contour may lie from a slice plane of the grid.
constexpr double kPlaneTolerance = 0.05;

DcmItem* item_of(DcmItem& parent, const DcmTagKey& sequence, unsigned long index) {
  DcmItem* item = nullptr;
  return parent.findAndGetSequenceItem(sequence, item, static_cast<long>(index)).good() ? item : nullptr;
}

unsigned long count_items(DcmItem& parent, const DcmTagKey& sequence) {
  DcmSequenceOfItems* seq = nullptr;
  return parent.findAndGetSequence(sequence, seq).good() && seq ? seq->card() : 0;
}

}  // namespace

bool is_rtstruct_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || !detail::nesting_problem(path).empty()) return false;
  DcmFileFormat file;
  if (file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 256, ERM_autoDetect).bad()) return false;
  return detail::item_code(*file.getDataset(), DCM_SOPClassUID) == kRtStructureSetStorage;
}

ReadRtStructResult read_rtstruct(const fs::path& path, const itk::ImageBase<3>& grid, const SeriesInfo* grid_info,
                                 const ReadRtStructOptions& options) {
  register_codecs();
  const std::string where = path.string();
  DcmFileFormat file;
  if (const auto problem = detail::nesting_problem(path); !problem.empty()) throw DicomError(where + ": " + problem);
  if (file.loadFile(path.c_str()).bad()) throw DicomError(where + ": not a readable DICOM file");
  DcmDataset& ds = *file.getDataset();
  if (detail::item_code(ds, DCM_SOPClassUID) != kRtStructureSetStorage)
    throw DicomError(fmt::format("{}: not an RT Structure Set (SOP class '{}')", where, detail::item_code(ds, DCM_SOPClassUID)));

  ReadRtStructResult r;
  r.sop_instance_uid = detail::item_code(ds, DCM_SOPInstanceUID);
  if (DcmItem* frame = item_of(ds, DCM_ReferencedFrameOfReferenceSequence, 0)) {
    r.frame_of_reference_uid = detail::item_code(*frame, DCM_FrameOfReferenceUID);
    if (DcmItem* study = item_of(*frame, DCM_RTReferencedStudySequence, 0))
      if (DcmItem* series = item_of(*study, DCM_RTReferencedSeriesSequence, 0))
        r.referenced_series_uid = detail::item_code(*series, DCM_SeriesInstanceUID);
  }
  if (grid_info && !grid_info->frame_of_reference_uid.empty() && !r.frame_of_reference_uid.empty() &&
      grid_info->frame_of_reference_uid != r.frame_of_reference_uid)
    throw DicomError(fmt::format("{}: its frame of reference ({}) is not the image's ({})", where, r.frame_of_reference_uid,
                                 grid_info->frame_of_reference_uid));

  // ROI number -> name, from the Structure Set ROI Sequence.
  std::map<std::string, std::string> names;
  for (unsigned long i = 0, n = count_items(ds, DCM_StructureSetROISequence); i < n; ++i)
    if (DcmItem* roi = item_of(ds, DCM_StructureSetROISequence, i))
      names[detail::item_code(*roi, DCM_ROINumber)] = detail::item_text(*roi, DCM_ROIName);

  std::map<std::string, int> template_value;
  int next_value = 1;
  for (const auto& t : options.label_template) {
    template_value[detail::ascii_lower(t.name)] = t.label;
    next_value = std::max(next_value, t.label + 1);
  }

  auto labels = LabelMap::New();
  labels->CopyInformation(&grid);
  labels->SetRegions(grid.GetLargestPossibleRegion());
  labels->Allocate(true);
  const auto size = grid.GetLargestPossibleRegion().GetSize();
  const int columns = static_cast<int>(size[0]), rows = static_cast<int>(size[1]);
  const std::size_t plane = size[0] * size[1];

  const unsigned long roi_count = count_items(ds, DCM_ROIContourSequence);
  if (roi_count == 0) throw DicomError(where + ": the structure set has no ROI contours");
  for (unsigned long i = 0; i < roi_count; ++i) {
    DcmItem& roi = *item_of(ds, DCM_ROIContourSequence, i);
    SegmentDescription d;
    const std::string number = detail::item_code(roi, DCM_ReferencedROINumber);
    d.name = names.count(number) ? names[number] : "ROI " + number;
    const auto t = template_value.find(detail::ascii_lower(d.name));
    d.label = t != template_value.end() ? t->second : next_value++;
    if (d.label > 65535) throw DicomError(where + ": more ROIs than a 16-bit label map holds");
    for (unsigned long c = 0; c < 3; ++c) {
      Sint32 v = 128;
      roi.findAndGetSint32(DCM_ROIDisplayColor, v, c);
      d.color[c] = static_cast<int>(v);
    }
    // Contours per slice, in index space.
    std::map<long, std::vector<contours::Polygon>> per_slice;
    for (unsigned long c = 0, n = count_items(roi, DCM_ContourSequence); c < n; ++c) {
      DcmItem& contour = *item_of(roi, DCM_ContourSequence, c);
      const std::string type = detail::item_code(contour, DCM_ContourGeometricType);
      if (type != "CLOSED_PLANAR") {
        r.warnings.push_back(fmt::format("ROI '{}': a {} contour was skipped (only CLOSED_PLANAR encloses voxels)", d.name, type));
        continue;
      }
      DcmElement* data = nullptr;
      if (contour.findAndGetElement(DCM_ContourData, data).bad() || !data || data->getVM() < 9 || data->getVM() % 3 != 0)
        throw DicomError(fmt::format("{}: ROI '{}' has a contour without at least three points", where, d.name));
      contours::Polygon polygon;
      double slice = 0;
      const unsigned long points = data->getVM() / 3;
      for (unsigned long p = 0; p < points; ++p) {
        itk::Point<double, 3> point;
        for (unsigned a = 0; a < 3; ++a) {
          Float64 v = 0;
          data->getFloat64(v, p * 3 + a);
          point[a] = v;
        }
        itk::ContinuousIndex<double, 3> index;
        grid.TransformPhysicalPointToContinuousIndex(point, index);
        if (p == 0) slice = std::round(index[2]);
        if (std::abs(index[2] - slice) > kPlaneTolerance)
          throw DicomError(fmt::format("{}: ROI '{}' has a contour that does not lie on one slice of the image "
                                       "(off by {:.2f} slices)",
                                       where, d.name, std::abs(index[2] - slice)));
        polygon.push_back({index[0], index[1]});
      }
      if (slice < 0 || slice >= static_cast<double>(size[2])) {
        r.warnings.push_back(fmt::format("ROI '{}': a contour outside the image's slices was skipped", d.name));
        continue;
      }
      per_slice[static_cast<long>(slice)].push_back(std::move(polygon));
    }
    std::vector<std::uint8_t> mask;
    for (const auto& [k, polygons] : per_slice) {
      mask.assign(plane, 0);
      contours::fill_even_odd(polygons, columns, rows, mask);
      std::uint16_t* out = labels->GetBufferPointer() + static_cast<std::size_t>(k) * plane;
      for (std::size_t v = 0; v < plane; ++v)
        if (mask[v]) out[v] = static_cast<std::uint16_t>(d.label);
    }
    r.rois.push_back(d);
  }
  r.labels = labels;
  return r;
}

}  // namespace sagitta::dicom
