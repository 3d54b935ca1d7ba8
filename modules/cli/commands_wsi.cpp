// `sagitta wsi`: whole-slide pathology. `wsi segment` runs a batch of slides (idempotent,
// resumable, sharded by --shard or a Slurm job array); `wsi info` prints what OpenSlide reads from a
// slide; `wsi train-demo` reproduces the demo pathology model. Thin wrappers over
// sagitta::segmentation::wsi.
#include <fmt/format.h>

#include <iostream>

#include "batch_options.h"
#include "command.h"
#include "progress.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model.h"
#include "sagitta/core/model_card.h"
#include "sagitta/segmentation/wsi.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace seg = sagitta::segmentation;
namespace wsi = sagitta::segmentation::wsi;
namespace {

Parameter ranged(Parameter p, double lo, double hi) {
  p.minimum = lo;
  p.maximum = hi;
  return p;
}

CommandSpec wsi_spec() {
  CommandSpec s = command_spec("wsi", "Sagitta Whole-Slide Segmentation",
      "Whole-slide pathology. 'segment': finds tissue, segments it tile by tile with a 2D RGB model at the "
      "card's microns per pixel (Gaussian-blended overlapping windows) and writes per slide a pyramidal TIFF "
      "label mask (OpenSlide/QuPath), a tissue picture and summary.json, plus a batch CSV. Finished slides are "
      "skipped, so a killed batch resumes where it stopped; --shard i/N or a Slurm job array "
      "(SLURM_ARRAY_TASK_ID/COUNT) splits the list. A bad slide is reported and the batch goes on (exit code 3 "
      "at the end). 'info': levels, resolution and objective of slides. 'train-demo': reproduces the demo "
      "pathology model from slides (pseudo-labels, see its card).");
  // One positional list, the action first: CLI11 would take a bare "info" or "segment" after
  // `wsi` for the top-level commands of those names unless a required positional is still open.
  Parameter slides = positional("slides", ParamType::String, 0, "Action and slides",
                                "segment|info|train-demo, then the whole-slide images (any format OpenSlide reads)");
  slides.multiple = true;
  slides.slicer = false;
  // Not checked by the parser: a missing slide is one failed line of the batch report, not a
  // refused command line.
  slides.channel = Channel::None;
  Parameter output = parameter("output", ParamType::Directory, "output", "", "Output folder",
                               "One sub-folder per slide (mask.tiff, tissue.png, summary.json) and batch.csv; "
                               "train-demo: the model folder");
  output.flag = "o";
  output.channel = Channel::Output;
  Parameter progress = switch_option("no_progress", "no-progress", "No progress", "No progress bar");
  progress.slicer = false;
  s.groups.push_back({"Input and output", "", {
      slides,
      parameter("model", ParamType::File, "model", "", "Model card", "model.json of a 2D RGB model with microns_per_pixel"),
      parameter("manifest", ParamType::File, "manifest", "", "Manifest",
                "Text file with one slide path per line (relative to the manifest; # comments)"),
      output,
      shard_parameter("slides"),
      force_parameter("slides"),
      progress,
  }});
  s.groups.push_back({"Resolution and tiling", "", {
      ranged(parameter("mpp", ParamType::Float, "mpp", "0", "Microns per pixel",
                       "Inference resolution (0: the card's microns_per_pixel); train-demo: the model's resolution"), 0, 1000),
      ranged(parameter("assume_mpp", ParamType::Float, "assume-mpp", "0", "Assumed slide resolution",
                       "Microns per pixel for slides whose file gives none (0: such slides fail)"), 0, 1000),
      ranged(parameter("overlap", ParamType::Float, "overlap", "0.25", "Overlap", "Fraction of a window shared with each neighbour"), 0, 0.5),
      ranged(parameter("min_tissue", ParamType::Float, "min-tissue", "0.05", "Minimum tissue",
                       "Windows whose centre has less tissue than this fraction are skipped as background"), 0, 1),
      ranged(parameter("batch", ParamType::Integer, "batch", "8", "Batch size", "Windows per forward pass"), 1, 1024),
      ranged(parameter("readers", ParamType::Integer, "readers", "2", "Reader threads",
                       "Threads decoding tiles while the network runs"), 1, 64),
      ranged(parameter("threads", ParamType::Integer, "threads", "0", "Threads", "LibTorch threads (0: all cores)"), 0, 256),
  }});
  s.groups.push_back({"Demo model training (train-demo)", "", {
      ranged(parameter("epochs", ParamType::Integer, "epochs", "20", "Epochs", ""), 1, 10000),
      ranged(parameter("iterations", ParamType::Integer, "iterations", "20", "Iterations per epoch", ""), 1, 100000),
      ranged(parameter("patch", ParamType::Integer, "patch", "128", "Patch", "Square patch, multiple of 16"), 16, 4096),
      ranged(parameter("base_channels", ParamType::Integer, "base-channels", "8", "Base channels", ""), 1, 256),
      parameter("seed", ParamType::Integer, "seed", "1", "Seed", ""),
      parameter("train_assume_mpp", ParamType::String, "slide-mpp", "", "Slide resolutions",
                "Comma-separated microns per pixel per training slide (0: from the file)"),
  }});
  s.groups.back().advanced = true;
  return s;
}

wsi::WsiOptions wsi_options(const Arguments& a) {
  wsi::WsiOptions o;
  if (a.real("mpp") > 0) o.target_mpp = a.real("mpp");
  if (a.real("assume_mpp") > 0) o.assume_mpp = a.real("assume_mpp");
  o.overlap = a.real("overlap");
  o.min_tissue_fraction = a.real("min_tissue");
  o.batch_size = int(a.integer("batch"));
  o.reader_threads = int(a.integer("readers"));
  o.threads = int(a.integer("threads"));
  return o;
}

std::vector<fs::path> slide_list(const Arguments& a) {
  std::vector<fs::path> slides;
  const auto args = a.list("slides");
  for (std::size_t k = 1; k < args.size(); ++k) slides.emplace_back(args[k]);
  if (!a.text("manifest").empty())
    for (const auto& s : batch::read_path_list(a.text("manifest"))) slides.push_back(s.input);
  if (slides.empty()) throw seg::SegmentationError("no slides: give slide files or --manifest list.txt");
  return slides;
}

// The batch CSV: per slide its status, tissue, tiles, seconds and area per class.
std::vector<batch::Column> csv_columns(const sagitta::ModelCard& card) {
  std::vector<batch::Column> c = {{"slide", "input"}, {"name", "id"}, {"status", "status"}, {"message", "message"}};
  for (const char* k : {"tissue_area_mm2", "tiles_total", "tiles_segmented", "seconds"}) c.push_back({k, k});
  for (const auto& l : card.labels) c.push_back({"area_" + l.name + "_mm2", "area_" + std::to_string(l.value)});
  return c;
}

batch::Row summary_cells(const nlohmann::json& s) {
  batch::Row row{{"tissue_area_mm2", fmt::format("{}", s["tissue"]["area_mm2"].get<double>())},
                 {"tiles_total", std::to_string(s["tiles"]["total"].get<long long>())},
                 {"tiles_segmented", std::to_string(s["tiles"]["segmented"].get<long long>())},
                 {"seconds", fmt::format("{}", s["timing"]["seconds"].get<double>())},
                 {"detail", fmt::format("{} of {} tiles segmented, tissue {:.2f} mm2", s["tiles"]["segmented"].get<long long>(),
                                        s["tiles"]["total"].get<long long>(), s["tissue"]["area_mm2"].get<double>())}};
  for (const auto& c : s["classes"])
    row["area_" + std::to_string(c["value"].get<int>())] = fmt::format("{}", c["area_mm2"].get<double>());
  return row;
}

// The slides through the one batch runner: a slide's folder appears whole when its summary is
// written; finished slides (same settings) are skipped; --shard or a Slurm array splits the list.
int run_segment(const Arguments& a) {
  if (a.text("model").empty()) throw seg::SegmentationError("wsi segment needs --model model.json");
  if (a.text("output").empty()) throw seg::SegmentationError("wsi segment needs -o/--output folder");
  const std::vector<batch::Item> slides = batch::items_from_paths(slide_list(a));
  batch::check_ids(slides);
  batch::Job job;
  job.output = a.text("output");
  job.shard = batch::choose_shard(a.text("shard"));
  job.force = a.flag("force");
  job.noun = "slide";
  job.prefetch = false;  // a slide is read tile by tile while the network runs (--readers)

  const sagitta::ModelCard card = sagitta::load_card(a.text("model"));
  wsi::WsiOptions wo = wsi_options(a);
  seg::ModelOptions mo;
  mo.threads = wo.threads;
  const seg::Model model = seg::Model::load(card, mo);
  const nlohmann::json settings = wsi::output_settings(card, wo);
  job.columns = csv_columns(card);
  BatchConsole console("Sagitta WSI", "whole-slide segmentation", a.flag("no_progress"));
  console.attach(job, slides.size(), "slides");
  job.finished = [&](const batch::Item&, const fs::path& folder) -> std::optional<batch::Row> {
    if (auto summary = wsi::finished_summary(folder, settings, wo.assume_mpp)) return summary_cells(*summary);
    return std::nullopt;
  };
  job.prepare = [&](const batch::Item& item) -> batch::Job::Work {
    return [&, item](const fs::path& staging) {
      wsi::WsiOptions o = wo;
      o.progress = [&](long long done, long long total) { return console.update(total ? double(done) / double(total) : 1.0); };
      try {
        return summary_cells(wsi::segment_slide(model, item.input, staging, o));
      } catch (const wsi::Stopped&) {
        throw Cancelled();
      }
    };
  };
  return console.finish(batch::run(slides, job), "sagitta wsi");
}

int run_info(const Arguments& a) {
  int failed = 0;
  for (const auto& path : slide_list(a)) {
    try {
      const auto slide = wsi::Slide::open(path);
      const auto& i = slide.info();
      nlohmann::json levels = nlohmann::json::array();
      for (const auto& l : i.levels) levels.push_back({{"width", l.width}, {"height", l.height}, {"downsample", l.downsample}});
      nlohmann::json j = {{"slide", path.string()}, {"vendor", i.vendor}, {"levels", levels},
                          {"mpp_x", i.mpp_x ? nlohmann::json(*i.mpp_x) : nlohmann::json(nullptr)},
                          {"mpp_y", i.mpp_y ? nlohmann::json(*i.mpp_y) : nlohmann::json(nullptr)},
                          {"objective_power", i.objective_power ? nlohmann::json(*i.objective_power) : nlohmann::json(nullptr)}};
      fmt::print("{}\n", j.dump());
    } catch (const seg::SegmentationError& e) {
      std::cerr << "sagitta wsi: " << e.what() << std::endl;
      ++failed;
    }
  }
  return failed ? kExitData : kExitOk;
}

int run_train_demo(const Arguments& a) {
  wsi::DemoTrainOptions o;
  o.slides = slide_list(a);
  if (a.text("output").empty()) throw seg::SegmentationError("wsi train-demo needs -o/--output folder");
  o.output = a.text("output");
  if (a.real("mpp") > 0) o.mpp = a.real("mpp");
  o.epochs = int(a.integer("epochs"));
  o.iterations = int(a.integer("iterations"));
  o.patch = int(a.integer("patch"));
  o.base_channels = int(a.integer("base_channels"));
  o.batch_size = int(a.integer("batch"));
  o.seed = unsigned(a.integer("seed"));
  o.threads = std::max(1, int(a.integer("threads")));
  const std::string mpps = a.text("train_assume_mpp");
  for (std::size_t start = 0; !mpps.empty() && start <= mpps.size();) {
    const auto comma = std::min(mpps.find(',', start), mpps.size());
    o.assume_mpp.push_back(std::stod(mpps.substr(start, comma - start)));
    start = comma + 1;
  }
  o.command = fmt::format("sagitta wsi train-demo --mpp {} --epochs {} --iterations {} --patch {} --base-channels {} "
                          "--batch {} --seed {} --threads {}{} -o {}",
                          o.mpp, o.epochs, o.iterations, o.patch, o.base_channels, o.batch_size, o.seed, o.threads,
                          mpps.empty() ? "" : " --slide-mpp " + mpps, o.output.filename().string());
  for (const auto& s : o.slides) o.command += " " + s.filename().string();
  o.progress = [](int epoch, double loss) { fmt::print("epoch {} loss {:.4f}\n", epoch, loss), std::fflush(stdout); };
  const auto card = wsi::train_demo_model(o);
  fmt::print("model: {}\n", card.string());
  return kExitOk;
}

}  // namespace

std::vector<Command> wsi_commands() {
  Command c;
  c.spec = wsi_spec();
  c.run = [](const Arguments& a) {
    const auto args = a.list("slides");
    const std::string action = args.empty() ? std::string() : args.front();
    if (action != "segment" && action != "info" && action != "train-demo") {
      std::cerr << "sagitta wsi: error: the first argument must be segment, info or train-demo (got '" << action
                << "'; see sagitta wsi --help)" << std::endl;
      return int(kExitUsage);
    }
    if (action == "info") return run_info(a);
    if (action == "train-demo") return run_train_demo(a);
    return run_segment(a);
  };
  return {c};
}

}  // namespace sagitta::cli
