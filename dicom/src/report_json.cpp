// JSON views of scan results and loaded series, shared by `sagitta info --json` and reports (the
// declarations and their contract: sagitta/dicom/report_json.h).
#include "sagitta/dicom/report_json.h"

#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include "sagitta/dicom/error.h"
#include "sagitta/dicom/text.h"
#include "stack_geometry.h"

namespace sagitta::dicom {

// Subjects are often file paths, whose bytes need not be UTF-8; decisions quote them.
nlohmann::json to_json(const Decision& d) { return {{"subject", valid_utf8(d.subject)}, {"decision", valid_utf8(d.what)}}; }

nlohmann::json to_json(const Stack& stack) {
  const SeriesInfo& i = stack.info;
  nlohmann::json j = {
      {"id", stack.id},
      {"specific_character_set", i.specific_character_set},
      {"patient", {{"name", i.patient_name}, {"id", i.patient_id}, {"birth_date", i.patient_birth_date}, {"sex", i.patient_sex}}},
      {"study", {{"uid", i.study_instance_uid}, {"date", i.study_date}, {"time", i.study_time}, {"id", i.study_id},
                 {"description", i.study_description}, {"accession_number", i.accession_number}}},
      {"series", {{"uid", i.series_instance_uid}, {"number", i.series_number}, {"description", i.series_description},
                  {"modality", i.modality}, {"body_part", i.body_part}, {"manufacturer", i.manufacturer}}},
      {"frame_of_reference_uid", i.frame_of_reference_uid},
      {"orientation", stack.orientation_label()},
      {"images", stack.frames.size()},
      {"split_reason", stack.split_reason},
  };
  if (!stack.frames.empty()) {
    const Frame& f = stack.frames.front();
    j["sop_class"] = dcmFindNameOfUID(f.sop_class_uid.c_str(), f.sop_class_uid.c_str());
    const DcmXfer xfer(f.transfer_syntax_uid.c_str());
    j["transfer_syntax"] = {{"uid", f.transfer_syntax_uid}, {"name", xfer.getXferName()}};
    j["image_orientation_patient"] = f.orientation;
  }
  // The grid the stack loads onto. An irregular stack is reported as refused, with the grid it
  // would get if resampling were allowed.
  auto describe_grid = [&](const detail::StackGeometry& g, const std::string& prefix) {
    j["size"] = {g.columns, g.rows, g.slices};
    j["volumes"] = g.volumes;
    j["spacing"] = g.spacing;
    j["origin"] = g.origin;
    nlohmann::json notes = nlohmann::json::array();
    for (const auto& d : g.decisions) notes.push_back(valid_utf8(prefix + d));
    j["geometry_notes"] = notes;
  };
  try {
    describe_grid(detail::plan_geometry(stack.frames, LoadOptions{}), "");
  } catch (const DicomError& refused) {
    j["geometry_error"] = valid_utf8(refused.what());
    try {
      LoadOptions o;
      o.irregular_spacing = IrregularSpacing::Resample;
      describe_grid(detail::plan_geometry(stack.frames, o), "with --resample-irregular: ");
    } catch (const DicomError&) {
    }
  }
  return j;
}

nlohmann::json to_json(const ScanResult& scan) {
  nlohmann::json stacks = nlohmann::json::array(), decisions = nlohmann::json::array();
  for (const auto& s : scan.stacks) stacks.push_back(to_json(s));
  for (const auto& d : scan.decisions) decisions.push_back(to_json(d));
  return {{"files_seen", scan.files_seen}, {"files_used", scan.files_used}, {"stacks", stacks}, {"decisions", decisions}};
}

}  // namespace sagitta::dicom
