#pragma once
// `sagitta listen`'s configuration (one JSON file, docs/listen.md) and the rules that choose a
// model for a series, as MONAI Deploy's selection rules do: every rule looks at every series of a
// complete study and matches on modality, body part, series description (a regular expression),
// orientation (from ImageOrientationPatient) and a slice-thickness range; each match is one
// segmentation with the rule's model and outputs.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sagitta::node {

// What a rule can look at, read from one instance of the series.
struct SeriesFacts {
  std::string series_uid, modality, body_part, description;
  std::string orientation;  // "axial", "sagittal", "coronal" or "" (no ImageOrientationPatient)
  std::optional<double> slice_thickness_mm;
  std::size_t instances = 0;
  std::string patient_name, patient_id;  // logged only with --log-phi
};

// The facts of the series whose files are in `folder` (the first readable instance decides).
// Throws sagitta::Error when no file there is DICOM.
SeriesFacts read_series_facts(const std::filesystem::path& folder);

// axial / sagittal / coronal: the patient axis the slice normal (row x column) is closest to.
std::string orientation_name(const double row[3], const double column[3]);

struct Rule {
  std::string name;
  std::vector<std::string> modalities, body_parts, orientations;  // empty: any; compared case-insensitively
  std::string description_regex;  // ECMAScript, searched case-insensitively; empty: any
  std::optional<double> min_thickness_mm, max_thickness_mm;  // inclusive
  std::filesystem::path model;  // model card (relative paths: to the configuration file)
  bool seg = true, sr = false, rtstruct = false;
  std::string seg_type = "binary";  // or "labelmap"
};

// Why `rule` does not take `series` ("" when it does), e.g. "modality MR is not CT".
std::string mismatch(const Rule& rule, const SeriesFacts& series);

struct Destination {
  std::string type = "dimse";  // "dimse" (C-STORE) or "dicomweb" (STOW-RS)
  nlohmann::json settings;     // the type's own keys (dimse: ae_title, host, port, calling_ae_title, timeouts;
                               // dicomweb: url, user, password, token, ca_file, timeouts)
};

struct NodeConfig {
  std::string ae_title = "SAGITTA";
  int port = 11112;
  std::filesystem::path spool;       // the node's persistent folders (docs/listen.md)
  double quiet_seconds = 30;         // a study is complete after this long without a new instance
  int concurrency = 1;               // studies worked on at once
  int threads = 0;                   // --threads of each segmentation (0: all cores)
  double retry_initial_seconds = 5;  // first wait after a failed send, doubled each time...
  double retry_max_seconds = 600;    // ...up to this
  bool keep_inputs = false;          // keep the received instances of done jobs (done/<job>/series)
  Destination destination;
  std::vector<Rule> rules;
};

// Reads and checks the configuration file; throws sagitta::Error naming the key that is wrong.
NodeConfig load_node_config(const std::filesystem::path& file);

}  // namespace sagitta::node
