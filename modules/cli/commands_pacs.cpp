// `sagitta pacs echo|find|get|move|store`: a DICOM network client over sagitta::dicom's dcmnet
// wrapper. One command with an action, so the peer options are declared once.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <cstdlib>
#include <iostream>

#include "command.h"
#include "pacs_options.h"
#include "progress.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/pacs.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;

std::vector<Parameter> pacs_peer_parameters() {
  Parameter host = option("pacs_host", ParamType::String, "host", "PACS host", "Host name or address of the PACS", "127.0.0.1");
  Parameter port = ranged(option("pacs_port", ParamType::Integer, "port", "PACS port", "DICOM port of the PACS", "104"), 1, 65535);
  Parameter aec = option("pacs_aec", ParamType::String, "aec", "PACS AE title", "Called AE title: the PACS'", "ANY-SCP");
  Parameter aet = option("pacs_aet", ParamType::String, "aet", "Our AE title",
                         "Calling AE title: ours (for move, the PACS must know it with our host and --move-port)", "SAGITTA");
  Parameter timeout = ranged(option("pacs_timeout", ParamType::Integer, "timeout", "Connect timeout (s)",
                             "Seconds to wait for the connection and the association", "10"), 1, 3600);
  Parameter dimse = ranged(option("pacs_dimse_timeout", ParamType::Integer, "dimse-timeout", "Message timeout (s)",
                           "Seconds to wait for each DICOM message (a silent PACS fails after this)", "60"), 1, 3600);
  for (Parameter* p : {&host, &port, &aec, &aet, &timeout, &dimse}) p->slicer = false;
  return {host, port, aec, aet, timeout, dimse};
}

dcm::PacsPeer pacs_peer(const Arguments& a) {
  dcm::PacsPeer p;
  p.host = a.text("pacs_host");
  p.port = static_cast<int>(a.integer("pacs_port"));
  p.called_ae = a.text("pacs_aec");
  p.calling_ae = a.text("pacs_aet");
  p.connect_timeout_s = static_cast<int>(a.integer("pacs_timeout"));
  p.acse_timeout_s = p.connect_timeout_s;
  p.dimse_timeout_s = static_cast<int>(a.integer("pacs_dimse_timeout"));
  return p;
}

void report_retrieval(const dcm::RetrieveResult& r, const std::string& folder, const std::string& noun, bool json,
                      nlohmann::json& out) {
  out["files"] = nlohmann::json::array();
  for (const auto& f : r.files) out["files"].push_back(f.string());
  out["completed"] = r.completed;
  out["transfer_syntaxes"] = r.transfer_syntaxes;
  if (!json)
    fmt::print("retrieved {} {} into {} (transfer syntaxes: {})\n", r.files.size(), noun, folder,
               fmt::join(r.transfer_syntaxes, ", "));
}

void parse_pacs_address(const std::string& address, dcm::PacsPeer& peer) {
  const auto at = address.find('@');
  const auto colon = address.rfind(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at || at == 0 || colon == at + 1)
    throw dcm::DicomError(fmt::format("--pacs '{}': write AE@host:port, e.g. ORTHANC@127.0.0.1:4242", address));
  peer.called_ae = address.substr(0, at);
  peer.host = address.substr(at + 1, colon - at - 1);
  try {
    peer.port = std::stoi(address.substr(colon + 1));
  } catch (...) {
    throw dcm::DicomError(fmt::format("--pacs '{}': the port is not a number", address));
  }
}


std::vector<Parameter> dicomweb_server_parameters() {
  Parameter user = option("dicomweb_user", ParamType::String, "user", "User",
                          "DICOMweb: user for HTTP basic authentication (or SAGITTA_DICOMWEB_USER)");
  Parameter password = option("dicomweb_password", ParamType::String, "password", "Password",
                              "DICOMweb: password for basic authentication; prefer SAGITTA_DICOMWEB_PASSWORD, which no "
                              "process listing shows");
  Parameter token = option("dicomweb_token", ParamType::String, "token", "Bearer token",
                           "DICOMweb: bearer token (Authorization: Bearer); prefer SAGITTA_DICOMWEB_TOKEN");
  Parameter ca = option("dicomweb_ca_file", ParamType::File, "ca-file", "CA bundle",
                        "DICOMweb over https: PEM file of the CA certificates to trust instead of the system's "
                        "(certificates and host names are always verified)");
  Parameter connect = ranged(option("dicomweb_connect_timeout", ParamType::Integer, "connect-timeout", "Connect timeout (s)",
                                    "DICOMweb: seconds to wait for the connection (TCP and TLS)", "10"), 1, 3600);
  Parameter total = ranged(option("dicomweb_timeout", ParamType::Integer, "request-timeout", "Request timeout (s)",
                                  "DICOMweb: seconds a whole request may take, transfer included", "3600"), 1, 86400);
  Parameter redirects = ranged(option("dicomweb_max_redirects", ParamType::Integer, "max-redirects", "Redirects",
                                      "DICOMweb: redirects followed at most (never from https to http)", "5"), 0, 20);
  std::vector<Parameter> all{user, password, token, ca, connect, total, redirects};
  for (auto& p : all) p.slicer = false;
  return all;
}

dcm::DicomWebServer dicomweb_server(const Arguments& a, const std::string& url) {
  dcm::DicomWebServer s;
  s.url = url;
  s.user = a.text("dicomweb_user");
  s.password = a.text("dicomweb_password");
  s.token = a.text("dicomweb_token");
  s.ca_file = a.text("dicomweb_ca_file");
  s.connect_timeout_s = static_cast<int>(a.integer("dicomweb_connect_timeout"));
  s.timeout_s = static_cast<int>(a.integer("dicomweb_timeout"));
  s.max_redirects = static_cast<int>(a.integer("dicomweb_max_redirects"));
  if (!s.password.empty() && s.user.empty() && !std::getenv(dcm::kDicomWebUserVariable))
    throw UsageError("--password needs --user (or SAGITTA_DICOMWEB_USER)");
  return dcm::with_environment(s);
}

std::vector<Parameter> query_key_parameters() {
  Parameter study = option("study", ParamType::String, "study", "Study", "StudyInstanceUID to match or retrieve");
  Parameter series = option("series", ParamType::String, "series", "Series", "SeriesInstanceUID to match or retrieve");
  Parameter patient = option("patient_id", ParamType::String, "patient-id", "Patient ID", "PatientID to match");
  Parameter modality = option("modality", ParamType::String, "modality", "Modality", "find/query: Modality to match");
  Parameter keys = option("keys", ParamType::String, "keys", "More keys",
                          "find/query: more keys as Keyword=value pairs separated by ';' (empty value: return the attribute)");
  return {study, series, patient, modality, keys};
}

dcm::QueryKeys query_keys(const Arguments& a) {
  dcm::QueryKeys k;
  if (!a.text("study").empty()) k["StudyInstanceUID"] = a.text("study");
  if (!a.text("series").empty()) k["SeriesInstanceUID"] = a.text("series");
  if (!a.text("patient_id").empty()) k["PatientID"] = a.text("patient_id");
  if (!a.text("modality").empty()) k["Modality"] = a.text("modality");
  const std::string extra = a.text("keys");
  std::size_t start = 0;
  while (start < extra.size()) {
    const std::size_t end = std::min(extra.find(';', start), extra.size());
    const std::string pair = extra.substr(start, end - start);
    if (!pair.empty()) {
      const std::size_t eq = pair.find('=');
      if (eq == std::string::npos) throw dcm::DicomError(fmt::format("--keys: '{}' is not Keyword=value", pair));
      k[pair.substr(0, eq)] = pair.substr(eq + 1);
    }
    start = end + 1;
  }
  return k;
}

namespace {

CommandSpec pacs_spec() {
  CommandSpec s = command_spec("pacs", "Sagitta PACS",
      "Talks to a PACS over DICOM: echo (C-ECHO), find (C-FIND at patient/study/series/image level), get (C-GET) or "
      "move (C-MOVE to ourselves) a study or series into a folder, store (C-STORE) files or folders. Compressed "
      "series, JPEG 2000 included, are received and stored as sent.");
  Parameter action = positional("action", ParamType::StringEnumeration, 0, "Action", "echo, find, get, move or store");
  action.enumeration = {"echo", "find", "get", "move", "store"};
  action.required = true;
  Parameter files = positional("files", ParamType::File, 1, "Files", "store: DICOM files or folders to send");
  files.multiple = true;
  files.required = false;  // only store takes files
  Parameter level = choice("level", "level", {"patient", "study", "series", "image"}, "study", "Level",
                           "find: query level; get/move: retrieve level (study when only --study is given)");
  Parameter out = option("output", ParamType::Directory, "output", "Output folder", "get/move: folder for the retrieved files");
  out.flag = "o";
  Parameter move_port = ranged(option("move_port", ParamType::Integer, "move-port", "Move port",
                               "move: port on which we receive the PACS' C-STORE (the PACS must know our AE title there)",
                               "11113"), 1, 65535);
  Parameter json = switch_option("json", "json", "JSON output", "Print the result as JSON on stdout");
  Parameter quiet = switch_option("no_progress", "no-progress", "No progress bar", "Do not draw a progress bar");
  std::vector<Parameter> main{action, files, level};
  for (const auto& p : query_key_parameters()) main.push_back(p);
  for (const auto& p : {out, move_port, json, quiet}) main.push_back(p);
  for (auto& p : main) p.slicer = false;
  s.groups.push_back({"Action", "", main});
  s.groups.push_back({"PACS", "", pacs_peer_parameters()});
  return s;
}


int run_pacs(const Arguments& a) {
  const std::string action = a.text("action");
  const dcm::PacsPeer peer = pacs_peer(a);
  const bool json = a.flag("json");
  Progress progress("Sagitta PACS", action, a.flag("no_progress") || json);
  auto report = [&](std::size_t done, std::size_t total) {
    return total > 0 ? progress.update(static_cast<long long>(done), static_cast<long long>(total)) : !cancel_requested();
  };
  nlohmann::json out = {{"action", action}, {"peer", fmt::format("{}@{}:{}", peer.called_ae, peer.host, peer.port)}};

  if (action == "echo") {
    dcm::pacs_echo(peer);
    if (!json) fmt::print("C-ECHO to {}@{}:{} succeeded\n", peer.called_ae, peer.host, peer.port);
  } else if (action == "find") {
    dcm::QueryLevel level = dcm::query_level_from_string(a.text("level"));
    const auto matches = dcm::pacs_find(peer, level, query_keys(a));
    out["matches"] = matches;
    if (!json) {
      for (const auto& m : matches) {
        std::string line;
        for (const auto& [k, v] : m) line += fmt::format("{}{}={}", line.empty() ? "" : "  ", k, v);
        fmt::print("{}\n", line);
      }
      fmt::print("{} match{}\n", matches.size(), matches.size() == 1 ? "" : "es");
    }
  } else if (action == "get" || action == "move") {
    if (a.text("output").empty()) throw dcm::DicomError(action + ": --output folder required");
    if (a.text("study").empty()) throw dcm::DicomError(action + ": --study UID required");
    dcm::QueryLevel level = a.text("series").empty() ? dcm::QueryLevel::Study : dcm::QueryLevel::Series;
    if (a.text("level") == "image") level = dcm::QueryLevel::Image;
    dcm::QueryKeys keys{{"StudyInstanceUID", a.text("study")}};
    if (!a.text("series").empty()) keys["SeriesInstanceUID"] = a.text("series");
    for (const auto& [k, v] : query_keys(a))
      if (k == "SOPInstanceUID") keys[k] = v;
    progress.stage("retrieving", 0, 1);
    dcm::RetrieveResult r;
    try {
      r = action == "get" ? dcm::pacs_get(peer, level, keys, a.text("output"), report)
                          : dcm::pacs_move(peer, level, keys, a.text("output"), static_cast<int>(a.integer("move_port")), report);
    } catch (const dcm::DicomError&) {
      if (cancel_requested()) throw Cancelled();
      throw;
    }
    progress.finish();
    report_retrieval(r, a.text("output"), "objects", json, out);
  } else {
    const auto inputs = a.list("files");
    if (inputs.empty()) throw dcm::DicomError("store: give the DICOM files or folders to send");
    progress.stage("sending", 0, 1);
    dcm::StoreResult r;
    try {
      r = dcm::pacs_store(peer, {inputs.begin(), inputs.end()}, report);
    } catch (const dcm::DicomError&) {
      if (cancel_requested()) throw Cancelled();
      throw;
    }
    progress.finish();
    out["sent"] = r.sent;
    out["sop_instance_uids"] = r.sop_instance_uids;
    out["warnings"] = r.warnings;
    if (!json) {
      for (const auto& w : r.warnings) std::cerr << "sagitta pacs: note: " << w << "\n";
      fmt::print("stored {} objects on {}@{}:{}\n", r.sent, peer.called_ae, peer.host, peer.port);
    }
  }
  if (json) std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return kExitOk;
}

}  // namespace

std::vector<Command> pacs_commands() { return {{pacs_spec(), run_pacs}}; }

}  // namespace sagitta::cli
