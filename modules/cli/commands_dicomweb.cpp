// `sagitta dicomweb query|retrieve|store`: a DICOMweb client (QIDO-RS, WADO-RS, STOW-RS) over
// sagitta::dicom, the HTTP counterpart of `sagitta pacs`, with the same keys and outputs.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>

#include "command.h"
#include "pacs_options.h"
#include "progress.h"
#include "sagitta/dicom/dicomweb.h"
#include "sagitta/dicom/error.h"

namespace sagitta::cli {
namespace dcm = sagitta::dicom;

namespace {

CommandSpec dicomweb_spec() {
  CommandSpec s = command_spec("dicomweb", "Sagitta DICOMweb",
      "Talks to a DICOMweb server over HTTP(S): query (QIDO-RS) studies, series or instances; retrieve (WADO-RS) a study "
      "or series into a folder, compressed instances kept as stored; store (STOW-RS) files or folders. TLS certificates "
      "are always verified; credentials may come from SAGITTA_DICOMWEB_USER, SAGITTA_DICOMWEB_PASSWORD or "
      "SAGITTA_DICOMWEB_TOKEN.");
  Parameter action = positional("action", ParamType::StringEnumeration, 0, "Action", "query, retrieve or store");
  action.enumeration = {"query", "retrieve", "store"};
  action.required = true;
  Parameter files = positional("files", ParamType::File, 1, "Files", "store: DICOM files or folders to send");
  files.multiple = true;
  files.required = false;  // only store takes files
  Parameter url = option("dicomweb_url", ParamType::String, "url", "Server URL",
                         "Base URL of the DICOMweb service, e.g. http://127.0.0.1:8042/dicom-web");
  url.required = true;
  Parameter level = choice("level", "level", {"study", "series", "image"}, "study", "Level",
                           "query: study, series or image (instance) level");
  Parameter out = option("output", ParamType::Directory, "output", "Output folder", "retrieve: folder for the instances");
  out.flag = "o";
  Parameter json = switch_option("json", "json", "JSON output", "Print the result as JSON on stdout");
  Parameter quiet = switch_option("no_progress", "no-progress", "No progress bar", "Do not draw a progress bar");
  std::vector<Parameter> main{action, files, url, level};
  for (const auto& p : query_key_parameters()) main.push_back(p);
  for (const auto& p : {out, json, quiet}) main.push_back(p);
  for (auto& p : main) p.slicer = false;
  s.groups.push_back({"Action", "", main});
  s.groups.push_back({"Server", "", dicomweb_server_parameters()});
  return s;
}

int run_dicomweb(const Arguments& a) {
  const std::string action = a.text("action");
  const dcm::DicomWebServer server = dicomweb_server(a, a.text("dicomweb_url"));
  const bool json = a.flag("json");
  Progress progress("Sagitta DICOMweb", action, a.flag("no_progress") || json);
  auto report = [&](std::size_t done, std::size_t total) {
    return total > 0 ? progress.update(static_cast<long long>(done), static_cast<long long>(total)) : !cancel_requested();
  };
  // A failure after a cancel request is the cancel.
  auto cancellable = [](auto&& work) {
    try {
      return work();
    } catch (const dcm::DicomError&) {
      if (cancel_requested()) throw Cancelled();
      throw;
    }
  };
  nlohmann::json out = {{"action", action}, {"url", dcm::without_credentials(server.url)}};

  if (action == "query") {
    const auto matches = cancellable(
        [&] { return dcm::qido_search(server, dcm::query_level_from_string(a.text("level")), query_keys(a), report); });
    out["matches"] = matches;
    if (!json) {
      for (const auto& m : matches) {
        std::string line;
        for (const auto& [k, v] : m) line += fmt::format("{}{}={}", line.empty() ? "" : "  ", k, v);
        fmt::print("{}\n", line);
      }
      fmt::print("{} match{}\n", matches.size(), matches.size() == 1 ? "" : "es");
    }
  } else if (action == "retrieve") {
    if (a.text("output").empty()) throw UsageError("retrieve: --output folder required");
    if (a.text("study").empty()) throw UsageError("retrieve: --study UID required");
    dcm::QueryKeys keys{{"StudyInstanceUID", a.text("study")}};
    if (!a.text("series").empty()) keys["SeriesInstanceUID"] = a.text("series");
    progress.stage("retrieving", 0, 1);
    const auto r = cancellable([&] { return dcm::wado_retrieve(server, keys, a.text("output"), report); });
    progress.finish();
    report_retrieval(r, a.text("output"), "instances", json, out);
  } else {
    const auto inputs = a.list("files");
    if (inputs.empty()) throw UsageError("store: give the DICOM files or folders to send");
    progress.stage("sending", 0, 1);
    const auto r = cancellable([&] { return dcm::stow_store(server, {inputs.begin(), inputs.end()}, report); });
    progress.finish();
    out["sent"] = r.sent;
    out["sop_instance_uids"] = r.sop_instance_uids;
    out["warnings"] = r.warnings;
    if (!json) {
      for (const auto& w : r.warnings) std::cerr << "sagitta dicomweb: note: " << w << "\n";
      fmt::print("stored {} instances on {}\n", r.sent, dcm::without_credentials(server.url));
    }
  }
  if (json) std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return kExitOk;
}

}  // namespace

std::vector<Command> dicomweb_commands() { return {{dicomweb_spec(), run_dicomweb}}; }

}  // namespace sagitta::cli
