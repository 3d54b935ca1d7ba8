// `sagitta info` and `sagitta convert`: DICOM folders in, tables, JSON and
// volumes out. Thin wrappers over sagitta::dicom.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <tuple>
#include <unistd.h>

#include "command.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/report_json.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/rtstruct.h"
#include "sagitta/dicom/seg.h"
#include "sagitta/dicom/slicer_seg.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/core/model_card.h"
#include "version.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace {

Parameter inputs_parameter() {
  Parameter p = positional("inputs", ParamType::Directory, 0, "DICOM input", "DICOM folders (searched recursively) or files");
  p.multiple = true;
  return p;
}

Parameter threads_parameter() {
  Parameter p = ranged(option("threads", ParamType::Integer, "threads", "Threads",
                       "Worker threads for reading and decoding (0: all cores)", "0"), 0, 256);
  return p;
}

Parameter json_parameter(const std::string& what) {
  Parameter p = switch_option("json", "json", "JSON output", what);
  p.slicer = false;  // machine-readable stdout is for scripts; Slicer uses the return parameter file
  return p;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<fs::path> paths(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

std::string fixed(double v, int digits = 3) {
  std::string s = fmt::format("{:.{}f}", v, digits);
  while (s.find('.') != std::string::npos && (s.back() == '0' || s.back() == '.')) {
    const bool dot = s.back() == '.';
    s.pop_back();
    if (dot) break;
  }
  return s;
}

// ---- info ------------------------------------------------------------------------------------

CommandSpec info_spec() {
  CommandSpec s = command_spec("info", "Sagitta DICOM Info",
      "Lists the patients, studies, series and stacks found in DICOM folders, with size, spacing, "
      "orientation, modality, transfer syntax and the decisions taken while grouping them.");
  s.groups.push_back({"Input", "", {inputs_parameter(), threads_parameter(),
                                     json_parameter("Print the scan as JSON on stdout")}});
  return s;
}

void print_table(const dcm::ScanResult& scan) {
  std::string last_patient, last_study;
  for (const auto& stack : scan.stacks) {
    const auto& i = stack.info;
    const std::string patient = i.patient_name + " (" + i.patient_id + ")";
    if (patient != last_patient) fmt::print("Patient {}  born {}  sex {}\n", patient, i.patient_birth_date, i.patient_sex);
    if (i.study_instance_uid != last_study || patient != last_patient) {
      fmt::print("  Study {} {} \"{}\" accession {}  {}\n", i.study_date, i.study_time, i.study_description,
                 i.accession_number, i.study_instance_uid);
      fmt::print("    {:<8} {:<4} {:<28} {:>6} {:<16} {:<22} {:<17} {}\n", "STACK", "MOD", "DESCRIPTION", "IMAGES",
                 "SIZE", "SPACING (mm)", "ORIENTATION", "TRANSFER SYNTAX");
    }
    last_patient = patient;
    last_study = i.study_instance_uid;
    const auto j = dcm::to_json(stack);
    std::string size = "?", spacing = "?";
    if (j.contains("size")) {
      size = fmt::format("{}x{}x{}", j["size"][0].get<int>(), j["size"][1].get<int>(), j["size"][2].get<int>());
      if (j["volumes"].get<int>() > 1) size += fmt::format("x{}", j["volumes"].get<int>());
      spacing = fmt::format("{}x{}x{}", fixed(j["spacing"][0]), fixed(j["spacing"][1]), fixed(j["spacing"][2]));
    }
    std::string description = i.series_description;
    if (description.size() > 28) {  // cut at a character boundary: the text is UTF-8
      std::size_t cut = 25;
      while (cut > 0 && (static_cast<unsigned char>(description[cut]) & 0xC0) == 0x80) --cut;
      description = description.substr(0, cut) + "...";
    }
    fmt::print("    {:<8} {:<4} {:<28} {:>6} {:<16} {:<22} {:<17} {}\n", stack.id, i.modality, description,
               stack.frames.size(), size, spacing, stack.orientation_label(),
               j.contains("transfer_syntax") ? j["transfer_syntax"]["name"].get<std::string>() : "");
    if (!stack.split_reason.empty()) fmt::print("             split off: {}\n", stack.split_reason);
    if (j.contains("geometry_error")) fmt::print("             cannot load: {}\n", j["geometry_error"].get<std::string>());
    if (j.contains("geometry_notes"))
      for (const auto& note : j["geometry_notes"]) fmt::print("             note: {}\n", note.get<std::string>());
  }
  std::size_t skipped = 0;
  for (const auto& d : scan.decisions) skipped += d.what.rfind("skipped", 0) == 0;
  fmt::print("{} files, {} used, {} skipped (see --json for every decision)\n", scan.files_seen, scan.files_used, skipped);
}

int run_info(const Arguments& a) {
  dcm::ScanOptions options;
  options.threads = static_cast<int>(a.integer("threads"));
  const auto scan = dcm::scan(paths(a.list("inputs")), options);
  if (a.flag("json"))
    std::cout << dcm::to_json(scan).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  else
    print_table(scan);
  return kExitOk;
}

// ---- convert ---------------------------------------------------------------------------------

std::vector<Parameter> convert_parameters(bool output_required) {
  Parameter out = option("output", ParamType::Image, "output", "Output volume",
                         "Volume to write: .nrrd, .nii.gz, .nii or .mha (several time points: a NRRD sequence or 4D image)");
  out.flag = "o";
  out.required = output_required;
  out.channel = Channel::Output;
  const Parameter series = option("series", ParamType::String, "series", "Series",
                                  "Stack id, SeriesNumber or SeriesInstanceUID to convert (needed when there are several)");
  const Parameter type = choice(
      "type", "type", {"auto", "float", "integer"}, "auto", "Pixel type",
      "auto: an integer type when the stored bits and rescale make every value an integer (int16 for most CT and MR, "
      "half the memory of float), else float; float: 32-bit float; integer: like auto but refuse when float would be "
      "needed");
  const Parameter compress = switch_option("compress", "compress", "Compress", "Compress the output (always on for .nii.gz)");
  const Parameter irregular = switch_option(
      "resample_irregular", "resample-irregular", "Resample irregular spacing",
      "When slices are unevenly spaced (e.g. a missing slice), interpolate onto a uniform grid instead of refusing");
  return {out, series, type, compress, irregular};
}

// Options that apply when the input is a DICOM SEG.
std::vector<Parameter> convert_seg_parameters() {
  Parameter reference = option("reference", ParamType::Directory, "reference", "Source series",
                               "DICOM SEG or RTSTRUCT input: the folder of the segmented series; the label map is then "
                               "made on its grid (required for RTSTRUCT), and the SEG must reference its images. "
                               "An output ending in .seg.nrrd is written in 3D Slicer's segmentation layout");
  reference.channel = Channel::Input;
  Parameter labels = option("label_card", ParamType::File, "labels-from", "Label values from",
                            "DICOM SEG or RTSTRUCT input: a model card whose label names give the label values (else "
                            "segment/ROI numbers)");
  labels.channel = Channel::Input;
  return {reference, labels};
}

CommandSpec convert_spec() {
  CommandSpec s = command_spec("convert", "Sagitta Convert",
      "Converts one DICOM series (any transfer syntax, single- or multi-frame) into a volume in the "
      "scanner's geometry, written through ITK as NRRD or NIfTI.");
  s.groups.push_back({"Input", "", {inputs_parameter()}});
  auto outputs = convert_parameters(true);
  s.groups.push_back({"Output", "", {outputs[0], outputs[2], outputs[3]}});
  s.groups.push_back({"Options", "", {outputs[1], outputs[4], threads_parameter(),
                                       json_parameter("Print a JSON report on stdout")}, true});
  s.groups.push_back({"DICOM SEG input", "", convert_seg_parameters(), true});
  return s;
}

// Loads in `TPixel` and writes; returns (volumes, geometry, decisions).
template <typename TPixel>
std::tuple<std::size_t, nlohmann::json, std::vector<dcm::Decision>, double, double> load_and_write(
    const dcm::Stack& stack, const dcm::LoadOptions& load_options, const fs::path& output, bool compress) {
  const auto t1 = std::chrono::steady_clock::now();
  auto loaded = dcm::load_as<TPixel>(stack, load_options);
  const double t_load = seconds_since(t1);
  const auto t2 = std::chrono::steady_clock::now();
  sagitta::write_volumes_as<TPixel>(loaded.volumes, output, compress);
  return {loaded.volumes.size(), sagitta::geometry_json(*loaded.volumes.front()), loaded.decisions, t_load,
          seconds_since(t2)};
}

// Scan, select, load and write; returns the JSON report.
nlohmann::json convert(const std::vector<fs::path>& inputs, const fs::path& output, const Arguments& a) {
  const auto t0 = std::chrono::steady_clock::now();
  dcm::ScanOptions scan_options;
  scan_options.threads = static_cast<int>(a.integer("threads"));
  const auto scan = dcm::scan(inputs, scan_options);
  const double t_scan = seconds_since(t0);
  const dcm::Stack& stack = dcm::select_stack(scan, a.text("series"));

  dcm::LoadOptions load_options;
  load_options.threads = scan_options.threads;
  if (a.flag("resample_irregular")) load_options.irregular_spacing = dcm::IrregularSpacing::Resample;
  // Integer stacks load straight into their integer type: no float copy, half the memory. The
  // narrow type of the stored values is tried first; if an actual value does not fit it, the
  // type that fits every value the headers allow is used.
  const std::string type = a.text("type");
  const dcm::IntegerType exact = type == "float" ? dcm::IntegerType::None : dcm::exact_integer_type(stack, load_options);
  const dcm::IntegerType stored = type == "float" ? dcm::IntegerType::None : dcm::stored_integer_type(stack, load_options);
  if (type == "integer" && exact == dcm::IntegerType::None && stored == dcm::IntegerType::None)
    throw dcm::DicomError("stack " + stack.id + ": rescaling or resampling makes values non-integer; use --type float or auto");
  const bool compress = a.flag("compress");
  auto load_write = [&](dcm::IntegerType t) {
    switch (t) {
      case dcm::IntegerType::Int16: return load_and_write<std::int16_t>(stack, load_options, output, compress);
      case dcm::IntegerType::UInt16: return load_and_write<std::uint16_t>(stack, load_options, output, compress);
      case dcm::IntegerType::Int32: return load_and_write<std::int32_t>(stack, load_options, output, compress);
      case dcm::IntegerType::None: break;
    }
    return load_and_write<float>(stack, load_options, output, compress);
  };
  dcm::IntegerType integer = exact;
  std::tuple<std::size_t, nlohmann::json, std::vector<dcm::Decision>, double, double> result;
  if (stored != dcm::IntegerType::None && stored != exact && (exact == dcm::IntegerType::None || exact == dcm::IntegerType::Int32)) {
    try {
      result = load_write(stored);
      integer = stored;
    } catch (const dcm::DicomError&) {
      result = load_write(exact);  // an actual value needs the wider type
    }
  } else {
    result = load_write(exact);
  }
  auto& [volumes, geometry, load_decisions, t_load, t_write] = result;
  const char* pixel_type = integer == dcm::IntegerType::Int16    ? "int16"
                           : integer == dcm::IntegerType::UInt16 ? "uint16"
                           : integer == dcm::IntegerType::Int32  ? "int32"
                                                                 : "float";

  nlohmann::json decisions = nlohmann::json::array();
  for (const auto& d : scan.decisions) decisions.push_back(dcm::to_json(d));
  for (const auto& d : load_decisions) decisions.push_back(dcm::to_json(d));
  return {{"sagitta_version", kVersion},
          {"command", "convert"},
          {"inputs", a.list("inputs")},
          {"output", output.string()},
          {"stack", dcm::to_json(stack)},
          {"volumes", volumes},
          {"pixel_type", pixel_type},
          {"geometry", geometry},
          {"decisions", decisions},
          {"timings_s", {{"scan", t_scan}, {"load", t_load}, {"write", t_write}}}};
}

// --reference (the source series, for the grid) and --labels-from (names and colours of a card).
dcm::ReadSegOptions read_seg_options(const Arguments& a, dcm::LoadedSeries& reference) {
  dcm::ReadSegOptions options;
  if (!a.text("reference").empty()) {
    dcm::ScanOptions so;
    so.threads = static_cast<int>(a.integer("threads"));
    reference = dcm::load(dcm::select_stack(dcm::scan({fs::path(a.text("reference"))}, so), a.text("series")));
    options.reference_grid = reference.volumes.front().GetPointer();
    options.reference = &reference.info;
  }
  if (!a.text("label_card").empty()) {
    const auto card = sagitta::load_card(a.text("label_card"), false);
    for (const auto& l : card.labels) options.label_template.push_back({l.value, l.name, l.color, {}, {}});
  }
  return options;
}

// The label map at `output`; overlapping segments as masks and a FRACTIONAL SEG's fractions
// beside it, named after it (labels.nrrd -> labels-segment-2.nrrd). All or nothing.
std::vector<std::string> write_seg_volumes(const dcm::ReadSegResult& seg, const fs::path& output, bool compress) {
  if (dcm::is_slicer_segmentation_path(output)) {  // one label map with Slicer's segment keys
    dcm::write_slicer_segmentation(*seg.labels, seg.segments, output);
    return {output.string()};
  }
  std::string name = output.filename().string();
  std::string ext;
  for (const char* e : {".nii.gz", ".nrrd", ".nii", ".mha"})
    if (name.size() > std::strlen(e) && name.compare(name.size() - std::strlen(e), std::strlen(e), e) == 0) {
      ext = e;
      name = name.substr(0, name.size() - ext.size());
      break;
    }
  std::vector<std::string> written;
  sagitta::write_volumes_as<std::uint16_t>({seg.labels}, output, compress);
  written.push_back(output.string());
  try {
    for (std::size_t s = 0; s < seg.masks.size(); ++s) {
      const fs::path p = output.parent_path() / fmt::format("{}-segment-{}{}", name, s + 1, ext);
      sagitta::write_volumes_as<std::uint16_t>({seg.masks[s]}, p, compress);
      written.push_back(p.string());
    }
    if (!seg.fractions.empty()) {
      const fs::path p = output.parent_path() / fmt::format("{}-fractions{}", name, ext);
      sagitta::write_volumes(seg.fractions, p, {sagitta::OutputPixelType::Float, compress});
      written.push_back(p.string());
    }
  } catch (...) {
    std::error_code ec;
    for (const auto& w : written) fs::remove(w, ec);
    throw;
  }
  return written;
}

nlohmann::json seg_report(const fs::path& input, const dcm::ReadSegResult& seg, const std::vector<std::string>& written) {
  nlohmann::json segments = nlohmann::json::array();
  for (std::size_t i = 0; i < seg.segments.size(); ++i) {
    const auto& d = seg.segments[i];
    segments.push_back({{"segment_number", i + 1},
                        {"label", d.label},
                        {"name", d.name},
                        {"color", d.color},
                        {"category", {d.category.value, d.category.scheme, d.category.meaning}},
                        {"type", {d.type.value, d.type.scheme, d.type.meaning}}});
  }
  return {{"sagitta_version", kVersion},        {"command", "convert"},
          {"input", input.string()},            {"kind", "dicom-seg"},
          {"segmentation_type", seg.segmentation_type}, {"outputs", written},
          {"segments", segments},               {"overlapping", seg.overlapping},
          {"warnings", seg.warnings},           {"referenced_series", seg.referenced_series_uid},
          {"geometry", sagitta::geometry_json(*seg.labels)}};
}

// A DICOM SEG into a label map (plus one mask per segment when segments overlap, and the
// fractions of a FRACTIONAL SEG).
int run_convert_seg(const fs::path& input, const fs::path& output, const Arguments& a) {
  const auto t0 = std::chrono::steady_clock::now();
  dcm::LoadedSeries reference;
  const auto seg = dcm::read_seg(input, read_seg_options(a, reference));
  const std::vector<std::string> written = write_seg_volumes(seg, output, a.flag("compress"));
  nlohmann::json report = seg_report(input, seg, written);
  report["timings_s"] = {{"total", seconds_since(t0)}};
  if (a.flag("json")) {
    std::cout << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    return kExitOk;
  }
  for (const auto& w : seg.warnings) std::cerr << "sagitta convert: warning: " << w << "\n";
  const auto size = seg.labels->GetLargestPossibleRegion().GetSize();
  fmt::print("wrote {} ({} SEG, {} segments, {}x{}x{} voxels)\n", output.string(), seg.segmentation_type,
             seg.segments.size(), size[0], size[1], size[2]);
  for (std::size_t i = 1; i < written.size(); ++i) fmt::print("wrote {}\n", written[i]);
  return kExitOk;
}

// An RTSTRUCT into a label map on the --reference series' grid (ROIs in order; values from
// --labels-from by ROI name, else 1, 2, ...); a .seg.nrrd output keeps names and colours.
int run_convert_rtstruct(const fs::path& input, const fs::path& output, const Arguments& a) {
  if (a.text("reference").empty())
    throw sagitta::Error("an RTSTRUCT holds contours only: give --reference <folder of the series it outlines>");
  dcm::LoadedSeries reference;
  const dcm::ReadSegOptions grid = read_seg_options(a, reference);
  dcm::ReadRtStructOptions options;
  options.label_template = grid.label_template;
  const auto rt = dcm::read_rtstruct(input, *grid.reference_grid, grid.reference, options);
  if (dcm::is_slicer_segmentation_path(output))
    dcm::write_slicer_segmentation(*rt.labels, rt.rois, output);
  else
    sagitta::write_volumes_as<std::uint16_t>({rt.labels}, output, a.flag("compress"));
  for (const auto& w : rt.warnings) std::cerr << "sagitta convert: warning: " << w << "\n";
  if (a.flag("json")) {
    nlohmann::json rois = nlohmann::json::array();
    for (const auto& r : rt.rois) rois.push_back({{"label", r.label}, {"name", r.name}, {"color", r.color}});
    std::cout << nlohmann::json{{"sagitta_version", kVersion}, {"command", "convert"}, {"input", input.string()},
                                {"kind", "rtstruct"}, {"outputs", {output.string()}}, {"rois", rois},
                                {"warnings", rt.warnings}, {"geometry", sagitta::geometry_json(*rt.labels)}}
                     .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
    return kExitOk;
  }
  fmt::print("wrote {} (RTSTRUCT, {} ROIs)\n", output.string(), rt.rois.size());
  return kExitOk;
}

int run_convert(const Arguments& a) {
  const auto inputs = a.list("inputs");
  if (inputs.size() == 1 && dcm::is_rtstruct_file(inputs.front())) return run_convert_rtstruct(inputs.front(), a.text("output"), a);
  if (inputs.size() == 1 && dcm::is_seg_file(inputs.front())) return run_convert_seg(inputs.front(), a.text("output"), a);
  const auto report = convert(paths(a.list("inputs")), a.text("output"), a);
  if (a.flag("json")) {
    std::cout << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  } else {
    const auto& g = report["geometry"];
    fmt::print("wrote {} ({}x{}x{}{} voxels, {}x{}x{} mm, stack {})\n", report["output"].get<std::string>(),
               g["size"][0].get<int>(), g["size"][1].get<int>(), g["size"][2].get<int>(),
               report["volumes"].get<int>() > 1 ? fmt::format("x{}", report["volumes"].get<int>()) : "",
               fixed(g["spacing"][0]), fixed(g["spacing"][1]), fixed(g["spacing"][2]),
               report["stack"]["id"].get<std::string>());
    for (const auto& d : report["decisions"]) {
      const std::string what = d["decision"];
      if (what.rfind("skipped", 0) != 0) fmt::print("  note: {}\n", what);
    }
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> dicom_commands() {
  return {{info_spec(), run_info}, {convert_spec(), run_convert}};
}

}  // namespace sagitta::cli
