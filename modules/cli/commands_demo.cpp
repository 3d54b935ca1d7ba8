// `sagitta demo`: the main job end to end on data that ships with Sagitta — by default the real
// 20-slice CT (testdata/demo/ct_real, from TotalSegmentator's tests) and the demo model trained on
// real CT (testdata/models/demo); the phantom series and model (with true labels to score against)
// for the fast tests. Every step is the real command run through the `sagitta` front in its own
// process, so the demo exercises exactly what a user types: info, convert, segment, explain, mesh,
// render, and last the study's HTML report.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "command.h"
#include "progress.h"
#include "run_main.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/core/model_card.h"
#include "version.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace {

CommandSpec demo_spec() {
  CommandSpec s = command_spec("demo", "Sagitta Demo",
      "Runs the whole pipeline on the demo data Sagitta ships: lists and converts the demo CT series (a real "
      "20-slice abdominal CT), segments it with the demo model (liver, spleen, kidneys, stomach), explains the liver "
      "with Grad-CAM and its faithfulness check, builds surfaces, renders an overview picture and ends with the "
      "study's self-contained HTML report; with --truth, scores the labels against it. Writes every output and a "
      "report.json.");
  Parameter data = option("data", ParamType::Directory, "data", "Demo data", "Folder with the demo DICOM series",
                          kDemoDataDir);
  data.channel = Channel::Input;
  Parameter model = option("model", ParamType::File, "model", "Model card", "Model that segments the demo series",
                           kDemoModelCard);
  model.channel = Channel::Input;
  Parameter truth = option("truth", ParamType::File, "truth", "True labels",
                           "Label map the segmentation is scored against (empty: no scoring)", kDemoTruth);
  truth.channel = Channel::Input;
  Parameter out = option("output", ParamType::Directory, "output", "Output folder",
                         "Folder for the demo's outputs (created if needed)", "sagitta-demo");
  out.flag = "o";
  out.channel = Channel::Output;
  Parameter threads = ranged(option("threads", ParamType::Integer, "threads", "Threads", "Threads for every step (0: all cores)", "0"), 0, 256);
  s.groups.push_back({"Demo", "", {data, model, truth, out, threads}});
  return s;
}

// Dice per label of `predicted` against `truth` (same grid), for the labels of the card.
nlohmann::json score(const fs::path& predicted, const fs::path& truth, const sagitta::ModelCard& card) {
  const auto p = sagitta::read_volume(predicted), t = sagitta::read_volume(truth);
  if (p->GetLargestPossibleRegion() != t->GetLargestPossibleRegion())
    throw sagitta::Error(fmt::format("{}: not on the grid of {}", truth.string(), predicted.string()));
  const std::size_t n = p->GetLargestPossibleRegion().GetNumberOfPixels();
  const float *pp = p->GetBufferPointer(), *tp = t->GetBufferPointer();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& label : card.labels) {
    if (label.value == 0) continue;
    const float v = float(label.value);
    std::size_t both = 0, np = 0, nt = 0;
    for (std::size_t i = 0; i < n; ++i) {
      np += pp[i] == v;
      nt += tp[i] == v;
      both += pp[i] == v && tp[i] == v;
    }
    nlohmann::json d = {{"value", label.value}, {"name", label.name}, {"predicted_voxels", np}, {"true_voxels", nt}};
    d["dice"] = np + nt ? nlohmann::json(2.0 * double(both) / double(np + nt)) : nlohmann::json(nullptr);
    out.push_back(d);
  }
  return out;
}

int run_demo(const Arguments& a) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path data = a.text("data"), out = a.text("output"), card_path = a.text("model"), truth = a.text("truth");
  const std::string threads = std::to_string(a.integer("threads"));
  if (!fs::is_directory(data)) throw sagitta::Error(fmt::format("demo data not found at {}; pass --data", data.string()));
  const sagitta::ModelCard card = sagitta::load_card(card_path);  // fails early, before any output
  fs::create_directories(out);

  nlohmann::json steps = nlohmann::json::array();
  auto step = [&](const std::string& name, std::vector<std::string> args, const std::string& skip_reason = "") {
    nlohmann::json s = {{"command", name}};
    std::string line = "sagitta " + name;
    for (const auto& x : args) line += " " + (x.find(' ') == std::string::npos ? x : "'" + x + "'");
    s["command_line"] = line;
    if (!skip_reason.empty()) {
      s["skipped"] = skip_reason;
      fmt::print("\n== {} (skipped: {})\n", line, skip_reason);
    } else {
      fmt::print("\n== {}\n", line);
      std::fflush(stdout);
      const auto t = std::chrono::steady_clock::now();
      std::vector<std::string> command{name};
      command.insert(command.end(), args.begin(), args.end());
      const int code = run_sagitta(command, "demo");
      s["exit_code"] = code;
      s["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
      if (code != kExitOk) throw sagitta::Error(fmt::format("demo step failed: {} (exit {})", line, code));
    }
    steps.push_back(s);
  };

  const fs::path ct = out / "ct.nrrd", seg_dir = out / "segmentation", labels = seg_dir / "labels.nrrd";
  step("info", {data.string(), "--threads", threads});
  step("convert", {data.string(), "-o", ct.string(), "--threads", threads});
  std::vector<std::string> segment_args = {data.string(), "--model", card_path.string(), "-o", seg_dir.string(),
                                           "--threads", threads, "--probabilities"};
  segment_args.push_back("--dicom-seg");
  step("segment", segment_args);
  const std::string explained = card.labels.size() > 1 ? card.labels[1].name : "";
  // The deletion curve (faithfulness) stays; the randomised-model sanity check would double the time.
  step("explain", {data.string(), "--model", card_path.string(), "--label", explained, "-o", (out / "explain").string(),
                   "--threads", threads, "--no-sanity"});
  step("mesh", {labels.string(), "-o", (out / "surfaces.vtp").string(), "--colors", card_path.string()});
  // Pictures need an X display (Debian's VTK has no offscreen backend without one).
  const char* display = std::getenv("DISPLAY");
  const std::string no_display = display && *display ? "" : "no X display; run the demo under xvfb-run -a";
  std::vector<std::string> render_args = {ct.string(), "--labels", labels.string(), "--colors", card_path.string(),
                                          "--view", "grid", "--size", "1024x1024", "-o", (out / "overview.png").string()};
  if (fs::exists(out / "explain" / "heatmap.nrrd"))
    render_args.insert(render_args.begin() + 3, {"--heatmap", (out / "explain" / "heatmap.nrrd").string()});
  step("render", render_args, no_display);
  // Last, the page a person reads: without a display it is written without its pictures, and says so.
  const fs::path page = out / "report.html";
  step("report", {seg_dir.string(), "--explanation", (out / "explain").string(), "-o", page.string()});

  nlohmann::json report = {{"sagitta_version", kVersion}, {"command", "demo"},   {"data", data.string()},
                           {"model", card_path.string()}, {"steps", steps}};
  if (!truth.empty()) {
    report["truth"] = truth.string();
    report["dice"] = score(labels, truth, card);
    fmt::print("\nDice against the phantom's true labels:");
    for (const auto& d : report["dice"])
      fmt::print("  {} {}", d["name"].get<std::string>(), d["dice"].is_null() ? std::string("n/a") : fmt::format("{:.3f}", d["dice"].get<double>()));
    fmt::print("\n");
  }
  report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_text_atomically(out / "report.json", report.dump(2) + "\n");
  report["report_html"] = page.string();
  fmt::print("demo outputs in {} ({:.1f} s); summary in {}\nopen the report: {}\n", out.string(),
             report["seconds"].get<double>(), (out / "report.json").string(), page.string());
  return kExitOk;
}

}  // namespace

std::vector<Command> demo_commands() { return {{demo_spec(), run_demo}}; }

}  // namespace sagitta::cli
