// The Slicer CLI modules built from the `sagitta` commands: their tables adapted to Slicer's
// conventions and their runs wrapped to report return parameters (see module_commands.h).
#include "module_commands.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <unistd.h>

#include "module_errors.h"
#include "progress.h"

namespace sagitta::slicer {
namespace fs = std::filesystem;
using cli::Arguments;
using cli::Channel;
using cli::CommandSpec;
using cli::Parameter;
using cli::ParamType;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Parameter* find_parameter(CommandSpec& spec, const std::string& name) {
  for (auto& g : spec.groups)
    for (auto& p : g.parameters)
      if (p.name == name) return &p;
  return nullptr;
}

void remove_parameters(CommandSpec& spec, const std::vector<std::string>& names) {
  for (auto& g : spec.groups)
    g.parameters.erase(std::remove_if(g.parameters.begin(), g.parameters.end(),
                                      [&](const Parameter& p) {
                                        return std::find(names.begin(), names.end(), p.name) != names.end();
                                      }),
                       g.parameters.end());
}

// The values the module was given, as the underlying command's arguments.
Arguments copy_arguments(const CommandSpec& spec, const Arguments& a) {
  Arguments out;
  for (const auto& g : spec.groups)
    for (const auto& p : g.parameters)
      if (a.has(p.name)) out.set(p.name, a.list(p.name));
  return out;
}

Parameter return_value(std::string name, ParamType type, std::string label, std::string description) {
  Parameter p;
  p.name = std::move(name);
  p.type = type;
  p.label = std::move(label);
  p.description = std::move(description);
  p.channel = Channel::Output;
  return p;
}

// ---- SagittaSegment ----------------------------------------------------------------------------
// `sagitta segment` writes a folder (labels, probabilities, report.json); Slicer gives one path
// for the label map node it will load. The module runs the command into a hidden folder beside
// that path, moves the label map into place last, and returns the per-label volumes.

ModuleCommand segment_module(const cli::Command& c) {
  ModuleCommand m;
  m.command = c.spec.name;
  m.reports_progress = true;
  CommandSpec spec = c.spec;
  // Files the command writes into its output folder have no place in the module (the folder is
  // not shown to Slicer): DICOM SEG, SR, RTSTRUCT, .seg.nrrd, probabilities.
  remove_parameters(spec, {"output", "format", "probabilities", "dicom_seg", "seg_type", "dicom_sr", "rtstruct", "slicer_seg"});
  Parameter out = cli::option("outputLabel", ParamType::LabelImage, "outputLabel", "Output label map",
                              "Label map in the input's geometry (one value per model label; 0 is background)");
  out.required = true;
  out.channel = Channel::Output;
  out.file_extensions = ".nrrd";
  out.reference = "inputs";
  for (auto& g : spec.groups)
    if (g.label == "Output") g.parameters.insert(g.parameters.begin(), out);
  if (!find_parameter(spec, "outputLabel")) spec.groups.push_back({"Output", "", {out}});
  spec.groups.push_back(
      {"Results", "Per-label results, filled in when the module has run",
       {return_value("labelValues", ParamType::IntegerVector, "Label values", "Label values present in the output"),
        return_value("labelNames", ParamType::StringVector, "Label names", "Model card names of those labels"),
        return_value("labelVolumesMl", ParamType::FloatVector, "Label volumes (mL)",
                     "Volume of each label in millilitres, in the order of the label values")}});
  m.spec = slicer_table(std::move(spec));

  const CommandSpec module_spec = m.spec;
  const auto run = c.run;
  m.run = [module_spec, run](const Arguments& a, ReturnValues& results) {
    const fs::path output = a.text("outputLabel");
    const bool nifti = ends_with(output.string(), ".nii.gz");
    if (!nifti && !ends_with(output.string(), ".nrrd"))
      throw UsageError("--outputLabel '" + output.string() + "': expected a .nrrd or .nii.gz path");
    const fs::path folder = output.parent_path().empty() ? fs::path(".") : output.parent_path();
    if (!fs::is_directory(folder)) throw DataError(folder.string() + ": no such folder for --outputLabel");
    const fs::path staging = folder / fmt::format(".sagitta-module-{}-{}", output.filename().string(), ::getpid());

    Arguments args = copy_arguments(module_spec, a);
    args.set("output", {staging.string()});
    args.set("format", {nifti ? "nifti" : "nrrd"});
    args.set("probabilities", {"false"});
    try {
      const int rc = run(args);
      if (rc != cli::kExitOk) {
        std::error_code ec;
        fs::remove_all(staging, ec);
        return rc;
      }
      std::ifstream report_file(staging / "report.json");
      const auto report = nlohmann::json::parse(report_file);
      std::vector<std::string> values, names, volumes;
      for (const auto& l : report.at("labels")) {
        if (l.at("value").get<int>() == 0 || l.at("voxels").get<std::size_t>() == 0) continue;
        values.push_back(std::to_string(l.at("value").get<int>()));
        std::string name = l.at("name").get<std::string>();
        std::replace(name.begin(), name.end(), ',', ' ');  // the list separator
        names.push_back(name);
        volumes.push_back(fmt::format("{:.3f}", l.at("volume_ml").get<double>()));
      }
      auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
        return s;
      };
      results["labelValues"] = join(values);
      results["labelNames"] = join(names);
      results["labelVolumesMl"] = join(volumes);
      // The last point where a SIGTERM still leaves nothing behind.
      if (cli::cancel_requested()) throw cli::Cancelled();
      fs::rename(staging / (nifti ? "labels.nii.gz" : "labels.nrrd"), output);
      fs::remove_all(staging);
    } catch (...) {
      std::error_code ec;
      fs::remove_all(staging, ec);
      throw;
    }
    return int(cli::kExitOk);
  };
  return m;
}

// ---- SagittaMesh -------------------------------------------------------------------------------
// A mesh output Slicer loads as a model node: one .vtp holding every label's surface.
ModuleCommand mesh_module(const cli::Command& c) {
  ModuleCommand m;
  m.command = c.spec.name;
  CommandSpec spec = c.spec;
  if (Parameter* out = find_parameter(spec, "output")) {
    out->type = ParamType::Geometry;
    out->file_extensions = ".vtp";
  }
  m.spec = slicer_table(std::move(spec));
  const auto run = c.run;
  m.run = [run](const Arguments& a, ReturnValues&) { return run(a); };
  return m;
}

// Any other command: the common table changes only.
ModuleCommand generic_module(const cli::Command& c) {
  ModuleCommand m;
  m.command = c.spec.name;
  m.spec = slicer_table(c.spec);
  const auto run = c.run;
  m.run = [run](const Arguments& a, ReturnValues&) { return run(a); };
  return m;
}

}  // namespace

std::string camel_case(const std::string& flag) {
  std::string out;
  bool upper = false;
  for (char c : flag) {
    if (c == '-' || c == '_') {
      upper = !out.empty();
      continue;
    }
    out += upper && c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c;
    upper = false;
  }
  return out;
}

CommandSpec slicer_table(CommandSpec spec) {
  for (auto& g : spec.groups) {
    g.parameters.erase(std::remove_if(g.parameters.begin(), g.parameters.end(), [](const Parameter& p) { return !p.slicer; }),
                       g.parameters.end());
    for (auto& p : g.parameters) {
      if (!p.longflag.empty()) p.longflag = camel_case(p.longflag);
      const bool file_like = p.type == ParamType::Image || p.type == ParamType::LabelImage || p.type == ParamType::File ||
                             p.type == ParamType::Directory || p.type == ParamType::Geometry;
      if (file_like && p.channel == Channel::None) p.channel = Channel::Input;
      if (p.index >= 0) p.multiple = false;
      // Slicer writes the volumes it hands over, and reads the ones it gets back, as NRRD.
      if ((p.type == ParamType::Image || p.type == ParamType::LabelImage) && p.file_extensions.empty())
        p.file_extensions = ".nrrd";
    }
  }
  spec.groups.erase(std::remove_if(spec.groups.begin(), spec.groups.end(),
                                   [](const cli::ParameterGroup& g) { return g.parameters.empty(); }),
                    spec.groups.end());
  return spec;
}

const std::vector<std::pair<std::string, std::string>>& module_names() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"segment", "SagittaSegment"}, {"explain", "SagittaExplain"}, {"convert", "SagittaConvert"}, {"mesh", "SagittaMesh"}};
  return names;
}

std::optional<ModuleCommand> module_command(const std::string& command) {
  std::string module;
  for (const auto& [c, m] : module_names())
    if (c == command) module = m;
  if (module.empty()) return std::nullopt;
  std::vector<cli::Command> commands;
  for (auto&& list : {cli::segmentation_commands(), cli::explain_commands(), cli::dicom_commands(), cli::viewer_commands()})
    for (const auto& c : list) commands.push_back(c);
  for (const auto& c : commands) {
    if (c.spec.name != command) continue;
    ModuleCommand m = command == "segment" ? segment_module(c) : command == "mesh" ? mesh_module(c) : generic_module(c);
    m.module = module;
    return m;
  }
  return std::nullopt;
}

}  // namespace sagitta::slicer
