// Model card -> DICOM SEG metadata (see sagitta/dicom/seg_from_card.h).
#include "sagitta/dicom/seg_from_card.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string>

namespace sagitta::dicom {

namespace {

// SNOMED CT codes for structures a demo or abdominal model commonly segments, used when a card
// gives none: a PACS viewer then shows the organ rather than a generic "Tissue".
const CodedConcept kAnatomicalStructure{"123037004", "SCT", "Anatomical Structure"};
const std::map<std::string, CodedConcept>& known_organs() {
  static const std::map<std::string, CodedConcept> m{
      {"liver", {"10200004", "SCT", "Liver"}},
      {"spleen", {"78961009", "SCT", "Spleen"}},
      {"kidney", {"64033007", "SCT", "Kidney"}},
      {"kidneys", {"64033007", "SCT", "Kidney"}},
      {"stomach", {"69695003", "SCT", "Stomach"}},
      {"pancreas", {"15776009", "SCT", "Pancreas"}},
      {"gallbladder", {"28231008", "SCT", "Gallbladder"}},
      {"heart", {"80891009", "SCT", "Heart"}},
      {"lung", {"39607008", "SCT", "Lung"}},
      {"aorta", {"15825003", "SCT", "Aorta"}},
      {"urinary bladder", {"89837001", "SCT", "Urinary bladder"}},
      {"bladder", {"89837001", "SCT", "Urinary bladder"}},
  };
  return m;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

CodedConcept concept_of(const sagitta::Code& c) { return {c.value, c.scheme, c.meaning}; }

}  // namespace

std::vector<SegmentDescription> segment_descriptions(const sagitta::ModelCard& card, const std::vector<bool>& present) {
  std::vector<sagitta::Label> labels = card.labels;
  std::sort(labels.begin(), labels.end(), [](const sagitta::Label& a, const sagitta::Label& b) { return a.value < b.value; });
  std::vector<SegmentDescription> out;
  for (const auto& l : labels) {
    if (l.value <= 0) continue;
    if (!present.empty() && (static_cast<std::size_t>(l.value) >= present.size() || !present[l.value])) continue;
    SegmentDescription d;
    d.label = l.value;
    d.name = l.name;
    d.color = l.color;
    if (l.category) d.category = concept_of(*l.category);
    if (l.type) d.type = concept_of(*l.type);
    if (d.type.empty()) {
      const auto it = known_organs().find(lower(l.name));
      if (it != known_organs().end()) {
        d.type = it->second;
        if (d.category.empty()) d.category = kAnatomicalStructure;
      }
    }
    out.push_back(d);
  }
  return out;
}

std::vector<bool> labels_present(const LabelMap& labels) {
  std::vector<bool> present(65536, false);
  const std::size_t n = labels.GetLargestPossibleRegion().GetNumberOfPixels();
  const std::uint16_t* v = labels.GetBufferPointer();
  for (std::size_t i = 0; i < n; ++i) present[v[i]] = true;
  return present;
}

SegWriteOptions seg_write_options(const sagitta::ModelCard& card, const char* version) {
  SegWriteOptions o;
  o.algorithm_name = card.name.empty() ? "Sagitta model" : card.name;
  o.algorithm_version = card.version.empty() ? "1" : card.version;
  o.series_description = "Sagitta " + o.algorithm_name;
  o.content_description = card.description;
  o.software_version = std::string("sagitta ") + version;
  return o;
}

}  // namespace sagitta::dicom
