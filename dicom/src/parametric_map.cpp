// Parametric Map writing with DCMTK's dcmpmap: float frames, the functional groups the IOD
// requires (pixel measures, plane orientation/position, frame anatomy, identity pixel value
// transformation, parametric map frame type, real world value mapping, frame content,
// derivation image), and the patient/study data of the source.
#include "sagitta/dicom/parametric_map.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgframeanatomy.h>
#include <dcmtk/dcmfg/fgpixeltransform.h>
#include <dcmtk/dcmfg/fgparametricmapframetype.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgrealworldvaluemapping.h>
#include <dcmtk/dcmiod/iodcontentitemmacro.h>
#include <dcmtk/dcmpmap/dpmparametricmapiod.h>
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "dicom_output.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;
using detail::ds;

namespace {
void check(const OFCondition& c, const fs::path& out, const std::string& what) {
  if (c.bad())
    throw DicomError(fmt::format("{}: cannot build the Parametric Map ({}: {})", out.string(), what, c.text()));
}

// Patient and study from the source; a new series and instance.
void set_series_and_instance(DPMParametricMapIOD& pm, const SeriesInfo& source, int series_number,
                             const fs::path& out, const ParametricMapOptions& options) {
  {
    DcmFileFormat src;
    detail::source_dataset(src, source);
    check(pm.importHierarchy(*src.getDataset(), OFTrue, OFTrue, OFTrue, OFFalse), out, "import patient and study");
  }
  check(pm.getSeries().setSeriesInstanceUID(detail::new_uid(SITE_SERIES_UID_ROOT)), out, "series UID");
  check(pm.getSeries().setSeriesNumber(std::to_string(series_number)), out, "series number");
  check(pm.getSeries().setSeriesDescription(detail::fit_text(options.series_description, 64), false), out, "series description");
  check(pm.getSOPCommon().setSOPInstanceUID(detail::new_uid(SITE_INSTANCE_UID_ROOT)), out, "instance UID");
  check(pm.getSOPCommon().setSpecificCharacterSet("ISO_IR 192"), out, "character set");  // text is UTF-8
  check(pm.getIODGeneralImageModule().setContentDate(detail::dicom_date()), out, "content date");
  check(pm.getIODGeneralImageModule().setContentTime(detail::dicom_time()), out, "content time");
  pm.setRecognizableVisualFeatures(DPMTypes::RVF_NO);
}

// Shared functional groups: geometry of the grid, anatomy, identity transformation, frame type.
void add_shared_groups(DPMParametricMapIOD& pm, const Image& map, const fs::path& out) {
  const auto& dir = map.GetDirection();
  const auto& spacing = map.GetSpacing();
  std::unique_ptr<FGPlaneOrientationPatient> orientation(FGPlaneOrientationPatient::createMinimal(
      ds(dir[0][0]), ds(dir[1][0]), ds(dir[2][0]), ds(dir[0][1]), ds(dir[1][1]), ds(dir[2][1])));
  check(pm.addForAllFrames(*orientation), out, "plane orientation");
  FGPixelMeasures measures;
  measures.setPixelSpacing(ds(spacing[1]) + "\\" + ds(spacing[0]));
  measures.setSliceThickness(ds(spacing[2]));
  measures.setSpacingBetweenSlices(ds(spacing[2]));
  check(pm.addForAllFrames(measures), out, "pixel measures");
  FGFrameAnatomy anatomy;
  anatomy.setLaterality(FGFrameAnatomy::LATERALITY_UNPAIRED);
  anatomy.getAnatomy().getAnatomicRegion().set("38266002", "SCT", "Entire body");
  check(pm.addForAllFrames(anatomy), out, "frame anatomy");
  FGPixelValueTransformation identity;
  identity.setFGType(FGPixelValueTransformation::E_PixelValTrans_Identity);
  identity.setRescaleSlope("1");
  identity.setRescaleIntercept("0");
  identity.setRescaleType("US");  // "unspecified": the identity mapping of the map's own values
  check(pm.addForAllFrames(identity), out, "identity transformation");
  FGParametricMapFrameType frame_type;
  frame_type.setFrameType("DERIVED\\PRIMARY\\VOLUME\\QUANTITY");
  check(pm.addForAllFrames(frame_type), out, "frame type");
}

// Values as they are (slope 1, intercept 0) over the map's range, named by the quantity and
// its units.
void add_value_mapping(DPMParametricMapIOD& pm, const Image& map, const fs::path& out,
                       const ParametricMapOptions& options) {
  const float* voxels = map.GetBufferPointer();
  const auto size = map.GetLargestPossibleRegion().GetSize();
  const std::size_t total = size[0] * size[1] * size[2];
  const auto [lo, hi] = std::minmax_element(voxels, voxels + total);
  FGRealWorldValueMapping mapping;
  auto* item = new FGRealWorldValueMapping::RWVMItem();
  item->setDoubleFloatRealWorldValueFirstValueMapped(*lo);
  item->setDoubleFloatRealWorldValueLastValueMapped(*hi == *lo ? *lo + 1 : *hi);
  item->setRealWorldValueSlope(1.0);
  item->setRealWorldValueIntercept(0.0);
  item->setLUTLabel(options.label.substr(0, 16));
  item->setLUTExplanation(detail::fit_text(options.quantity.meaning, 64));
  item->getMeasurementUnitsCode().set(options.units.value, options.units.scheme, options.units.meaning);
  auto* quantity = new ContentItemMacro();
  quantity->setValueType(ContentItemMacro::VT_CODE);
  quantity->getEntireConceptNameCodeSequence().push_back(new CodeSequenceMacro("246205007", "SCT", "Quantity"));
  quantity->getEntireConceptCodeSequence().push_back(
      new CodeSequenceMacro(options.quantity.value, options.quantity.scheme, options.quantity.meaning));
  item->getEntireQuantityDefinitionSequence().push_back(quantity);
  mapping.getRealWorldValueMapping().push_back(item);
  check(pm.addForAllFrames(mapping), out, "real world value mapping");
}

// "Image Processing" (DCM 113073, CID 7203) of one source slice: the map is computed from the image.
std::unique_ptr<FGDerivationImage> derivation_of(const SliceSource& slice, const fs::path& out) {
  OFVector<ImageSOPInstanceReferenceMacro> refs(1);
  refs[0].setReferencedSOPClassUID(slice.sop_class_uid);
  refs[0].setReferencedSOPInstanceUID(slice.sop_instance_uid);
  if (slice.frame > 0) refs[0].addReferencedFrameNumber(static_cast<Uint16>(slice.frame));
  std::unique_ptr<FGDerivationImage> derivation(FGDerivationImage::createMinimal(
      refs, "", CodeSequenceMacro("113073", "DCM", "Image Processing"),
      CodeSequenceMacro("121322", "DCM", "Source image for image processing operation")));
  if (!derivation) throw DicomError(out.string() + ": cannot build the derivation image group");
  return derivation;
}

// One float frame per slice, indexed by its position, derived from the source slice.
void add_frames(DPMParametricMapIOD& pm, const Image& map, const SeriesInfo& source, const fs::path& out) {
  const std::string dimension_uid = detail::new_uid(SITE_INSTANCE_UID_ROOT);
  check(pm.getIODMultiframeDimensionModule().addDimensionIndex(DCM_ImagePositionPatient, dimension_uid,
                                                               DCM_PlanePositionSequence, "ImagePositionPatient"),
        out, "dimension index");

  auto frames_variant = pm.getFrames();
  auto* frames = OFget<DPMParametricMapIOD::Frames<Float32>>(&frames_variant);
  if (!frames) throw DicomError(out.string() + ": cannot add float frames");
  const auto size = map.GetLargestPossibleRegion().GetSize();
  const std::size_t plane = size[0] * size[1];
  const float* voxels = map.GetBufferPointer();
  const auto& slices = source.slices.front();
  std::vector<Float32> buffer(plane);
  for (std::size_t k = 0; k < size[2]; ++k) {
    itk::Point<double, 3> p;
    map.TransformIndexToPhysicalPoint({{0, 0, static_cast<itk::IndexValueType>(k)}}, p);
    std::unique_ptr<FGPlanePosPatient> position(FGPlanePosPatient::createMinimal(ds(p[0]), ds(p[1]), ds(p[2])));
    FGFrameContent frame_content;
    check(frame_content.setDimensionIndexValues(static_cast<Uint32>(k + 1), 0), out, "frame content");
    const std::unique_ptr<FGDerivationImage> derivation = derivation_of(slices[k], out);
    std::copy(voxels + k * plane, voxels + (k + 1) * plane, buffer.begin());
    OFVector<FGBase*> groups;
    groups.push_back(position.get());
    groups.push_back(&frame_content);
    groups.push_back(derivation.get());
    check(frames->addFrame(buffer.data(), plane, groups), out, "add frame");
  }
}

}  // namespace

ParametricMapResult write_parametric_map(const Image& map, const itk::ImageBase<3>& source_grid, const SeriesInfo& source,
                                         const fs::path& out, const ParametricMapOptions& options) {
  register_codecs();  // silences DCMTK's logging
  detail::check_on_source_grid(map, source_grid, source, out.string());
  const auto size = map.GetLargestPossibleRegion().GetSize();
  if (size[0] > 65535 || size[1] > 65535) throw DicomError(out.string() + ": slices larger than 65535 pixels");
  const int series_number = detail::derived_series_number(options.series_number, source, 2000);
  IODEnhGeneralEquipmentModule::EquipmentInfo equipment("Sagitta", detail::fit_text(options.algorithm_name, 64), "1",
                                                        detail::fit_text(options.software_version, 64));
  ContentIdentificationMacro content;
  detail::set_content_identification(content, options.label.substr(0, 16), detail::fit_text(options.quantity.meaning, 64),
                                     options.algorithm_name);

  const std::string modality = source.modality.empty() ? "OT" : source.modality;
  auto created = DPMParametricMapIOD::create<IODFloatingPointImagePixelModule>(
      modality.c_str(), std::to_string(series_number).c_str(), "1", static_cast<Uint16>(size[1]),
      static_cast<Uint16>(size[0]), equipment, content, "VOLUME", "QUANTITY", DPMTypes::CQ_RESEARCH);
  if (OFCondition* error = OFget<OFCondition>(&created)) check(*error, out, "create");
  DPMParametricMapIOD* pm = OFget<DPMParametricMapIOD>(&created);
  if (!pm) throw DicomError(out.string() + ": cannot build the Parametric Map");

  set_series_and_instance(*pm, source, series_number, out, options);
  add_shared_groups(*pm, map, out);
  add_value_mapping(*pm, map, out, options);
  add_frames(*pm, map, source, out);

  const detail::DerivedUids uids = detail::save_iod(
      *pm, [&](DcmItem& dataset) { check(pm->writeDataset(dataset), out, "write"); }, source, out);
  ParametricMapResult r;
  r.sop_instance_uid = uids.sop_instance_uid;
  r.series_instance_uid = uids.series_instance_uid;
  r.notes = uids.notes;
  r.frames = size[2];
  return r;
}

}  // namespace sagitta::dicom
