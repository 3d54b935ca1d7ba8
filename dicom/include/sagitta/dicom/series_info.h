#pragma once
// What a derived object (label map, DICOM SEG, heatmap) must know about the series it came from.
#include <string>
#include <vector>

namespace sagitta::dicom {

// The source of one slice of a loaded volume: an instance, and a frame for multi-frame objects.
struct SliceSource {
  std::string sop_instance_uid;
  std::string sop_class_uid;
  int frame = 0;  // 1-based frame number in a multi-frame instance, 0 for single-frame instances
  std::string path;
};

// Text fields are UTF-8, converted from the source's Specific Character Set (text.h).
struct SeriesInfo {
  std::string specific_character_set;  // the source's (0008,0005), as written
  // Patient module
  std::string patient_name, patient_id, patient_birth_date, patient_sex;
  // General study module
  std::string study_instance_uid, study_date, study_time, study_id, study_description,
      accession_number, referring_physician_name;
  // General series module
  std::string series_instance_uid, series_number, series_description, modality, body_part;
  // Frame of reference and equipment
  std::string frame_of_reference_uid, manufacturer, manufacturer_model;
  std::string sop_class_uid, transfer_syntax_uid;
  // slices[v][k]: the source of slice k (along the output's third axis) of volume v.
  // Slices made by resampling list the nearest source slice.
  std::vector<std::vector<SliceSource>> slices;
};

}  // namespace sagitta::dicom
