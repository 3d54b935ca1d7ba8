// `sagitta render`, `sagitta view` and `sagitta mesh`: pictures, the interactive viewer and
// label meshes. Thin wrappers over sagitta::viewer; ViewerError becomes exit code 3 here.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "command.h"
#include "sagitta/dicom/open_volume.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/viewer/display.h"
#include "sagitta/viewer/error.h"
#include "sagitta/viewer/interactive_viewer.h"
#include "sagitta/viewer/offscreen_render.h"
#include "sagitta/viewer/scene.h"
#include "sagitta/viewer/surfaces.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace vw = sagitta::viewer;
namespace {

Parameter input_parameter() {
  Parameter p = parameter("input", ParamType::Image, "", "", "Volume", "Volume file (.nrrd, .nii.gz, .mha...) or DICOM folder");
  p.index = 0;
  p.required = true;
  p.channel = Channel::Input;
  return p;
}

std::vector<Parameter> overlay_parameters() {
  Parameter labels = parameter("labels", ParamType::LabelImage, "labels", "", "Label map", "Label map on the volume's grid");
  labels.channel = Channel::Input;
  Parameter heat = parameter("heatmap", ParamType::Image, "heatmap", "", "Heatmap", "Heatmap (e.g. Grad-CAM) on the volume's grid");
  heat.channel = Channel::Input;
  Parameter card = parameter("colors", ParamType::File, "colors", "", "Label colours",
                        "Model card (JSON) whose \"labels\" give names and colours");
  card.channel = Channel::Input;
  Parameter resample = switch_option("resample_overlays", "resample-overlays", "Resample overlays",
                            "Resample a label map or heatmap whose geometry differs from the volume's (else refused)");
  Parameter series = parameter("series", ParamType::String, "series", "", "Series",
                          "Stack id, SeriesNumber or SeriesInstanceUID when the input folder holds several");
  return {labels, heat, card, resample, series};
}

std::vector<Parameter> display_parameters() {
  Parameter preset = parameter("preset", ParamType::StringEnumeration, "preset", "default", "Window preset",
                          "default (soft tissue for CT, percentiles otherwise), brain 80/40, soft-tissue 400/40, "
                          "lung 1500/-600, bone 1800/400, or auto (1st-99th percentile)");
  preset.enumeration = {"default", "auto", "brain", "soft-tissue", "lung", "bone"};
  Parameter window = ranged(parameter("window", ParamType::Float, "window", "", "Window", "Window width (overrides the preset)"), 0);
  Parameter level = parameter("level", ParamType::Float, "level", "", "Level", "Window centre (overrides the preset)");
  Parameter opacity = ranged(parameter("label_opacity", ParamType::Float, "label-opacity", "0.5", "Label opacity",
                           "Opacity of the label overlay, 0..1"), 0, 1);
  Parameter per_label = parameter("label_opacities", ParamType::String, "label-opacities", "", "Per-label opacity",
                             "Opacity per label value, e.g. \"2=0.2,3=0\" (0 hides a label)");
  Parameter outline = switch_option("outline", "outline", "Outline labels",
                           "Draw label outlines instead of filled regions");
  Parameter threshold = parameter("heatmap_threshold", ParamType::Float, "heatmap-threshold", "0.2", "Heatmap threshold",
                             "Heatmap values below this are transparent");
  Parameter heat_opacity = ranged(parameter("heatmap_opacity", ParamType::Float, "heatmap-opacity", "0.5", "Heatmap opacity",
                                "Opacity of the heatmap overlay, 0..1"), 0, 1);
  Parameter colormap = parameter("colormap", ParamType::StringEnumeration, "colormap", "jet", "Heatmap colours",
                            "Colour map of the heatmap");
  colormap.enumeration = {"jet", "hot", "inferno", "viridis"};
  return {preset, window, level, opacity, per_label, outline, threshold, heat_opacity, colormap};
}

std::pair<int, int> parse_size(const std::string& text) {
  int w = 0, h = 0;
  char x = 0;
  std::istringstream in(text);
  if (!(in >> w >> x >> h) || x != 'x' || w < 16 || h < 16 || w > 8192 || h > 8192)
    throw vw::ViewerError("--size '" + text + "': expected WIDTHxHEIGHT, 16..8192 pixels");
  return {w, h};
}

// Loads the volume (file or DICOM folder) and the overlays, and applies the display settings.
std::unique_ptr<vw::Scene> load_scene(const Arguments& a) {
  dicom::OpenOptions oo;
  oo.series = a.text("series");
  oo.single_volume = false;  // a time series shows its first volume
  const dicom::OpenedVolume in = dicom::open_volume(a.text("input"), oo);
  const vw::Image::Pointer volume = in.volume;
  const std::string modality = in.modality;
  const auto mismatch = a.flag("resample_overlays") ? vw::GeometryMismatch::Resample : vw::GeometryMismatch::Refuse;
  vw::LabelImage::Pointer labels;
  vw::Image::Pointer heatmap;
  if (!a.text("labels").empty()) labels = vw::read_label_map(a.text("labels"), volume, mismatch);
  if (!a.text("heatmap").empty()) heatmap = vw::read_heatmap(a.text("heatmap"), volume, mismatch);
  auto scene = std::make_unique<vw::Scene>(volume, labels, heatmap, modality);

  auto& d = scene->display;
  const std::string preset = a.text("preset");
  if (preset == "auto")
    d.window = vw::auto_window(volume);
  else if (preset != "default")
    d.window = *vw::find_preset(preset);
  if (a.has("window") && !a.text("window").empty()) {
    d.window.window = a.real("window");
    d.window.name = "custom";
  }
  if (a.has("level") && !a.text("level").empty()) {
    d.window.level = a.real("level");
    d.window.name = "custom";
  }
  if (d.window.window <= 0) throw vw::ViewerError("--window must be positive");
  if (!a.text("colors").empty()) scene->label_table = vw::LabelTable::from_model_card(a.text("colors"), scene->max_label());
  const double opacity = a.real("label_opacity");
  for (const auto& [value, style] : scene->label_table.styles()) scene->label_table[value].opacity = opacity;
  d.label_opacity = 1.0;
  std::stringstream per(a.text("label_opacities"));
  for (std::string item; std::getline(per, item, ',');) {
    const auto eq = item.find('=');
    try {
      if (eq == std::string::npos) throw std::invalid_argument(item);
      const int value = std::stoi(item.substr(0, eq));
      const double o = std::stod(item.substr(eq + 1));
      if (value <= 0 || value > 65535 || o < 0 || o > 1) throw std::invalid_argument(item);
      scene->label_table[value].opacity = o;
      scene->label_table[value].visible = o > 0;
    } catch (const std::logic_error&) {
      throw vw::ViewerError("--label-opacities '" + item + "': expected VALUE=OPACITY with opacity 0..1");
    }
  }
  d.label_outline = a.flag("outline");
  d.heatmap.threshold = a.real("heatmap_threshold");
  d.heatmap.opacity = a.real("heatmap_opacity");
  d.heatmap.colormap = vw::parse_colormap(a.text("colormap"));
  return scene;
}

// ---- render ----------------------------------------------------------------------------------

CommandSpec render_spec() {
  CommandSpec s = command_spec("render", "Sagitta Render",
      "Renders a volume with its label map and heatmap offscreen into a PNG: one slice view in the "
      "radiological convention, the 3D surfaces, a 2x2 grid (axial, coronal, sagittal, 3D) or a montage of "
      "axial slices, annotated with orientation, slice position, window/level, a scale bar and a legend. "
      "Needs an X display; under a server use xvfb-run.");
  auto overlays = overlay_parameters();
  s.groups.push_back({"Input", "", {input_parameter(), overlays[0], overlays[1], overlays[2]}});
  Parameter out = parameter("output", ParamType::File, "output", "", "Picture", "PNG file to write");
  out.flag = "o";
  out.required = true;
  out.channel = Channel::Output;
  Parameter view = parameter("view", ParamType::StringEnumeration, "view", "axial", "View", "What to render");
  view.enumeration = {"axial", "coronal", "sagittal", "3d", "grid", "montage"};
  Parameter slice = parameter("slice", ParamType::String, "slice", "auto", "Slice",
                         "Slice index of the view (0 = lowest patient coordinate along its normal), or auto: through "
                         "the labels' centroid, else the heatmap's peak, else the centre");
  Parameter count = ranged(parameter("montage_count", ParamType::Integer, "montage-count", "9", "Montage slices",
                         "Number of axial slices in a montage"), 1, 64);
  Parameter size = parameter("size", ParamType::String, "size", "512x512", "Size", "Picture size WIDTHxHEIGHT in pixels");
  Parameter volume_rendering = switch_option("volume_rendering", "volume-rendering",
                                    "Volume rendering", "3D: render the volume behind the surfaces");
  Parameter no_annotations = switch_option("no_annotations", "no-annotations", "No annotations",
                                  "Leave out letters, position, W/L, scale bar and legend");
  s.groups.push_back({"Output", "", {out, view, slice, count, size}});
  s.groups.push_back({"Display", "", display_parameters()});
  s.groups.push_back({"Options", "", {overlays[3], overlays[4], volume_rendering, no_annotations}, true});
  return s;
}

int run_render(const Arguments& a) {
  auto scene = load_scene(a);
  scene->display.annotations = !a.flag("no_annotations");
  scene->display.volume_rendering = a.flag("volume_rendering");
  vw::RenderRequest r;
  r.layout = vw::parse_layout(a.text("view"));
  const std::string slice = a.text("slice");
  if (slice != "auto") {
    try {
      std::size_t used = 0;
      r.slice = std::stoi(slice, &used);
      if (used != slice.size()) throw std::invalid_argument(slice);
    } catch (const std::logic_error&) {
      throw vw::ViewerError("--slice '" + slice + "': expected a slice index or auto");
    }
  }
  r.montage_count = static_cast<int>(a.integer("montage_count"));
  std::tie(r.width, r.height) = parse_size(a.text("size"));
  const fs::path out = a.text("output");
  vw::render_png(*scene, r, out);
  fmt::print("wrote {} ({} view, {}x{}, W {} L {})\n", out.string(), a.text("view"), r.width, r.height,
             scene->display.window.window, scene->display.window.level);
  return kExitOk;
}

// ---- view ------------------------------------------------------------------------------------

CommandSpec view_spec() {
  CommandSpec s = command_spec("view", "Sagitta View",
      "Opens the interactive viewer: axial, coronal, sagittal and 3D views linked by a crosshair. Left click "
      "moves the crosshair (3D: rotates), wheel scrolls, Ctrl+wheel zooms, middle drag pans, right drag sets "
      "window/level; keys 1-4 CT presets, 0 auto window, l labels, h heatmap, o outline, [ ] opacity, s "
      "screenshot, r reset, q quit.");
  auto overlays = overlay_parameters();
  s.groups.push_back({"Input", "", {input_parameter(), overlays[0], overlays[1], overlays[2]}});
  s.groups.push_back({"Display", "", display_parameters()});
  Parameter size = parameter("size", ParamType::String, "size", "1024x1024", "Window size", "Window size WIDTHxHEIGHT");
  Parameter shots = parameter("screenshots", ParamType::Directory, "screenshots", ".", "Screenshot folder",
                         "Where the s key writes PNGs");
  Parameter no_surfaces = switch_option("no_surfaces", "no-surfaces", "No surfaces",
                               "Skip the 3D label surfaces (faster start for large label maps)");
  s.groups.push_back({"Options", "", {overlays[3], overlays[4], size, shots, no_surfaces}, true});
  return s;
}

int run_view(const Arguments& a) {
  // Before loading anything: a missing display should fail at once, not after a long load.
  vw::require_display("use `sagitta render` to write pictures without a window");
  auto scene = load_scene(a);
  vw::ViewerOptions o;
  std::tie(o.width, o.height) = parse_size(a.text("size"));
  o.screenshot_folder = a.text("screenshots");
  o.surfaces = !a.flag("no_surfaces");
  vw::InteractiveViewer viewer(*scene, o);
  viewer.run();
  return kExitOk;
}

// ---- mesh ------------------------------------------------------------------------------------

CommandSpec mesh_spec() {
  CommandSpec s = command_spec("mesh", "Sagitta Mesh",
      "Builds one smoothed surface per label of a label map in patient coordinates (mm) for 3D printing and "
      "Slicer: .vtp holds all surfaces, .stl/.obj one per file (<name>_<label>_<label name>.stl when several).");
  Parameter labels = parameter("input", ParamType::LabelImage, "", "", "Label map", "Label map (.nrrd, .nii.gz...)");
  labels.index = 0;
  labels.required = true;
  labels.channel = Channel::Input;
  Parameter out = parameter("output", ParamType::File, "output", "", "Mesh", "Mesh file: .stl, .vtp or .obj");
  out.flag = "o";
  out.required = true;
  out.channel = Channel::Output;
  Parameter which = parameter("only", ParamType::String, "only", "", "Labels", "Label values to mesh, e.g. \"1,3\" (default: all)");
  Parameter smoothing = ranged(parameter("smoothing", ParamType::Integer, "smoothing", "20", "Smoothing iterations",
                             "Windowed sinc smoothing iterations (0: none)"), 0, 200);
  Parameter band = ranged(parameter("pass_band", ParamType::Float, "pass-band", "0.1", "Pass band",
                        "Smoothing pass band, 0.001..1 (smaller: smoother)"), 0.001, 1);
  Parameter decimate = ranged(parameter("decimate", ParamType::Float, "decimate", "0", "Decimation",
                            "Fraction of triangles to remove, 0..0.95"), 0, 0.95);
  Parameter card = parameter("colors", ParamType::File, "colors", "", "Model card", "Model card whose labels name the surfaces");
  Parameter coords = parameter("coordinates", ParamType::StringEnumeration, "coordinates", "lps", "Coordinates",
                          "Patient coordinate system of the points (Slicer reads LPS by default)");
  coords.enumeration = {"lps", "ras"};
  Parameter json = switch_option("json", "json", "JSON", "Print a JSON report on stdout");
  json.slicer = false;
  s.groups.push_back({"Input", "", {labels}});
  s.groups.push_back({"Output", "", {out, coords}});
  s.groups.push_back({"Surface", "", {which, smoothing, band, decimate, card, json}, true});
  return s;
}

int run_mesh(const Arguments& a) {
  const auto labels = vw::read_label_map(a.text("input"), nullptr);
  vw::SurfaceOptions o;
  std::stringstream only(a.text("only"));
  for (std::string item; std::getline(only, item, ',');) {
    try {
      o.labels.push_back(std::stoi(item));
    } catch (const std::logic_error&) {
      throw vw::ViewerError("--only '" + a.text("only") + "': expected label values like 1,3");
    }
  }
  o.smoothing_iterations = static_cast<int>(a.integer("smoothing"));
  o.pass_band = a.real("pass_band");
  o.decimation = a.real("decimate");
  const auto counts = vw::label_voxel_counts(labels);
  const int max_label = static_cast<int>(counts.size()) - 1;
  const auto table = a.text("colors").empty() ? vw::LabelTable::defaults(max_label)
                                              : vw::LabelTable::from_model_card(a.text("colors"), max_label);
  const auto surfaces = vw::build_surfaces(labels, table, o);
  const auto files = vw::write_surfaces(surfaces, a.text("output"),
                                        a.text("coordinates") == "ras" ? vw::MeshCoordinates::RAS : vw::MeshCoordinates::LPS);
  if (a.flag("json")) {
    nlohmann::json j = {{"command", "mesh"}, {"input", a.text("input")}, {"coordinates", a.text("coordinates")}};
    j["files"] = nlohmann::json::array();
    for (const auto& f : files) j["files"].push_back(f.string());
    j["surfaces"] = nlohmann::json::array();
    for (const auto& s : surfaces)
      j["surfaces"].push_back({{"label", s.label},
                               {"name", s.name},
                               {"voxels", s.voxels},
                               {"voxel_volume_ml", s.voxel_volume_mm3 / 1000},
                               {"mesh_volume_ml", s.mesh_volume_mm3 / 1000},
                               {"triangles", s.mesh->GetNumberOfCells()}});
    std::cout << j.dump(2) << std::endl;
  } else {
    for (const auto& s : surfaces)
      fmt::print("label {} ({}): {} triangles, {:.2f} mL (voxels {:.2f} mL)\n", s.label, s.name,
                 s.mesh->GetNumberOfCells(), s.mesh_volume_mm3 / 1000, s.voxel_volume_mm3 / 1000);
    for (const auto& f : files) fmt::print("wrote {}\n", f.string());
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> viewer_commands() {
  return {{render_spec(), run_render}, {view_spec(), run_view}, {mesh_spec(), run_mesh}};
}

}  // namespace sagitta::cli
