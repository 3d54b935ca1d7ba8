// An nnU-Net v2 results folder read into a Plan (see nnunet.h): plans.json (the configuration with
// its inheritance resolved, as PlansManager does), dataset.json (channels, labels, regions, file
// ending, reader) and the folds' checkpoints.
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/nnunet.h"

namespace sagitta::segmentation::nnunet {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

[[noreturn]] void fail(const fs::path& folder, const std::string& what) {
  throw SegmentationError(fmt::format("nnU-Net results folder {}: {}", folder.string(), what));
}

ojson read_json(const fs::path& folder, const std::string& name) {
  const fs::path file = folder / name;
  if (!fs::is_regular_file(file)) fail(folder, name + " is missing");
  std::ifstream in(file);
  try {
    return ojson::parse(in);
  } catch (const std::exception& e) {
    fail(folder, fmt::format("{} is not valid JSON ({})", name, e.what()));
  }
}

// The dataset as the review checks see it. The fingerprint's spacings and shapes_after_crop are
// in the reader's array order (z y x of the stored axes, for every nnU-Net reader); reversed here.
TrainingProfile dataset_profile(const fs::path& folder, const ojson& plans, const std::vector<std::string>& channels) {
  TrainingProfile p;
  p.source = "nnU-Net plans.json";
  if (channels.size() == 1 && channels[0] == "CT") p.modality = "CT";
  const ojson intensity = plans.contains("foreground_intensity_properties_per_channel")
                              ? plans.at("foreground_intensity_properties_per_channel")
                              : plans.value("foreground_intensity_properties_by_modality", ojson::object());
  for (std::size_t i = 0; i < channels.size(); ++i) {
    const std::string key = std::to_string(i);
    if (!intensity.contains(key)) {
      p.foreground.clear();
      break;
    }
    const ojson& v = intensity.at(key);
    p.foreground.push_back({v.at("mean").get<double>(), v.at("std").get<double>(), v.at("percentile_00_5").get<double>(),
                            v.at("median").get<double>(), v.at("percentile_99_5").get<double>()});
  }
  const fs::path fingerprint = folder / "dataset_fingerprint.json";
  if (!fs::is_regular_file(fingerprint)) return p;
  const ojson f = read_json(folder, "dataset_fingerprint.json");
  const auto spacings = f.at("spacings").get<std::vector<std::vector<double>>>();
  const auto shapes = f.at("shapes_after_crop").get<std::vector<std::vector<double>>>();
  if (spacings.empty() || spacings.size() != shapes.size()) return p;
  std::array<double, 3> smin, smax, emin, emax;
  smin.fill(1e300), emin.fill(1e300), smax.fill(0), emax.fill(0);
  for (std::size_t k = 0; k < spacings.size(); ++k) {
    if (spacings[k].size() != 3 || shapes[k].size() != 3) return p;
    for (std::size_t a = 0; a < 3; ++a) {
      const double s = spacings[k][2 - a], e = s * shapes[k][2 - a];
      smin[a] = std::min(smin[a], s), smax[a] = std::max(smax[a], s);
      emin[a] = std::min(emin[a], e), emax[a] = std::max(emax[a], e);
    }
  }
  p.spacing_min = smin, p.spacing_max = smax, p.extent_min = emin, p.extent_max = emax;
  p.cases = int(spacings.size());
  p.source = "nnU-Net plans.json and dataset_fingerprint.json";
  return p;
}

// PlansManager._internal_resolve_configuration_inheritance
// PlansManager._recursive_update: objects in both are updated key by key, anything else replaced.
void recursive_update(ojson& base, const ojson& child) {
  for (auto it = child.begin(); it != child.end(); ++it) {
    if (base.contains(it.key()) && base[it.key()].is_object() && it.value().is_object())
      recursive_update(base[it.key()], it.value());
    else
      base[it.key()] = it.value();
  }
}

ojson configuration(const fs::path& folder, const ojson& plans, const std::string& name, std::set<std::string> seen = {}) {
  const ojson& all = plans.at("configurations");
  if (!all.contains(name)) {
    std::vector<std::string> names;
    for (auto it = all.begin(); it != all.end(); ++it) names.push_back(it.key());
    fail(folder, fmt::format("plans.json has no configuration '{}' (it has {})", name, fmt::join(names, ", ")));
  }
  ojson c = all.at(name);
  if (c.contains("inherits_from")) {
    const std::string parent = c.at("inherits_from");
    if (!seen.insert(name).second || seen.count(parent)) fail(folder, "plans.json has circular configuration inheritance");
    ojson base = configuration(folder, plans, parent, seen);
    // PlansManager's merge: nested objects updated key by key unless the child says nested_override false
    if (c.value("nested_override", true)) recursive_update(base, c);
    else
      for (auto it = c.begin(); it != c.end(); ++it) base[it.key()] = it.value();
    c = base;
  }
  return c;
}

// Plans written before nnU-Net 2.3 (TotalSegmentator's, for one) name the network with
// UNet_class_name and its sizes with separate keys; nnU-Net's ConfigurationManager rebuilds the
// architecture entry from them, as this does: features double per stage up to the maximum, the
// encoder's convolutions (or residual blocks) per stage, instance norm with affine and eps 1e-5,
// LeakyReLU, biases, no dropout.
ojson legacy_architecture(const fs::path& folder, const ojson& c) {
  if (!c.contains("UNet_class_name"))
    fail(folder, "plans.json's configuration has neither 'architecture' nor the older 'UNet_class_name'");
  const std::string cls = c.at("UNet_class_name").get<std::string>();
  if (cls != "PlainConvUNet" && cls != "ResidualEncoderUNet")
    fail(folder, fmt::format("network '{}' is not supported (PlainConvUNet and ResidualEncoderUNet are)", cls));
  const auto encoder = c.at("n_conv_per_stage_encoder");
  const std::size_t stages = encoder.size();
  const int dims = int(c.at("patch_size").size());
  const int base = c.at("UNet_base_num_features").get<int>(), most = c.at("unet_max_num_features").get<int>();
  ojson features = ojson::array();
  for (std::size_t i = 0; i < stages; ++i) features.push_back(std::min<long long>((long long)base << i, most));
  ojson kw = ojson::object();
  kw["n_stages"] = stages;
  kw["features_per_stage"] = features;
  kw["conv_op"] = fmt::format("torch.nn.modules.conv.Conv{}d", dims);
  kw["kernel_sizes"] = c.at("conv_kernel_sizes");
  kw["strides"] = c.at("pool_op_kernel_sizes");
  kw[cls == "PlainConvUNet" ? "n_conv_per_stage" : "n_blocks_per_stage"] = encoder;
  kw["n_conv_per_stage_decoder"] = c.at("n_conv_per_stage_decoder");
  kw["conv_bias"] = true;
  kw["norm_op"] = fmt::format("torch.nn.modules.instancenorm.InstanceNorm{}d", dims);
  kw["norm_op_kwargs"] = {{"eps", 1e-05}, {"affine", true}};
  kw["dropout_op"] = nullptr;
  kw["dropout_op_kwargs"] = nullptr;
  kw["nonlin"] = "torch.nn.LeakyReLU";
  kw["nonlin_kwargs"] = {{"inplace", true}};
  ojson a = ojson::object();
  a["network_class_name"] = cls == "PlainConvUNet" ? "dynamic_network_architectures.architectures.unet.PlainConvUNet"
                                                   : "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet";
  a["arch_kwargs"] = kw;
  a["_kw_requires_import"] = {"conv_op", "norm_op", "dropout_op", "nonlin"};
  return a;
}

// patch_size, or patch_size_unit x patch_size_multiplier when both are given (newer plans); a
// patch_size that is neither is a contradiction nnU-Net refuses too.
std::vector<int> patch_size(const fs::path& folder, const ojson& c) {
  const ojson unit = c.value("patch_size_unit", ojson());
  const ojson multiplier = c.value("patch_size_multiplier", ojson());
  if (!unit.is_array() || !multiplier.is_number_integer() || multiplier.get<long long>() < 1)
    return c.at("patch_size").get<std::vector<int>>();
  std::vector<int> derived;
  for (const auto& u : unit) derived.push_back(u.get<int>() * multiplier.get<int>());
  if (c.contains("patch_size")) {
    const auto given = c.at("patch_size").get<std::vector<int>>();
    if (given != derived && given != unit.get<std::vector<int>>())
      fail(folder, "the configuration's patch_size contradicts patch_size_unit x patch_size_multiplier");
  }
  return derived;
}

Resampling resampling(const fs::path& folder, const ojson& c, const std::string& which) {
  const std::string fn = c.value("resampling_fn_" + which, std::string());
  if (fn != "resample_data_or_seg_to_shape")
    fail(folder, fmt::format("resampling_fn_{} '{}' is not supported (only resample_data_or_seg_to_shape)", which, fn));
  Resampling r;
  const ojson kw = c.value("resampling_fn_" + which + "_kwargs", ojson::object());
  if (kw.value("is_seg", false)) fail(folder, fmt::format("resampling_fn_{}_kwargs has is_seg true", which));
  r.order = kw.value("order", 3);
  r.order_z = kw.value("order_z", 0);
  if (kw.contains("force_separate_z") && !kw.at("force_separate_z").is_null())
    r.force_separate_z = kw.at("force_separate_z").get<bool>();
  if (kw.contains("separate_z_anisotropy_threshold"))
    r.anisotropy_threshold = kw.at("separate_z_anisotropy_threshold").get<double>();
  if (r.order != 0 && r.order != 1 && r.order != 3)
    fail(folder, fmt::format("resampling_fn_{}_kwargs order {} is not supported (0, 1 or 3)", which, r.order));
  if (r.order_z != 0 && r.order_z != 1)
    fail(folder, fmt::format("resampling_fn_{}_kwargs order_z {} is not supported (0 or 1)", which, r.order_z));
  return r;
}

Reader reader_of(const fs::path& folder, const std::string& name) {
  if (name == "SimpleITKIO") return Reader::SimpleITK;
  if (name == "NibabelIO") return Reader::Nibabel;
  if (name == "NibabelIOWithReorient") return Reader::NibabelWithReorient;
  fail(folder, fmt::format("image reader '{}' is not supported (SimpleITKIO, NibabelIO, NibabelIOWithReorient)", name));
}

void read_labels(const fs::path& folder, const ojson& dataset, Plan& plan) {
  if (!dataset.contains("labels") || !dataset.at("labels").is_object()) fail(folder, "dataset.json has no labels");
  const ojson& labels = dataset.at("labels");
  if (!labels.contains("background")) fail(folder, "dataset.json declares no background label");
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (it.key() == "ignore") {
      if (!it.value().is_number_integer()) fail(folder, "dataset.json's ignore label must be one integer");
      plan.ignore_label = it.value().get<int>();
      continue;
    }
    Label l;
    l.name = it.key();
    if (it.value().is_array()) {
      for (const auto& v : it.value()) l.values.push_back(v.get<int>());
      if (l.values.size() > 1) plan.has_regions = true;
    } else {
      l.values.push_back(it.value().get<int>());
    }
    plan.labels.push_back(l);
  }
  if (plan.has_regions) {
    if (!dataset.contains("regions_class_order"))
      fail(folder, "dataset.json has region labels but no regions_class_order");
    plan.regions_class_order = dataset.at("regions_class_order").get<std::vector<int>>();
    if (int(plan.regions_class_order.size()) != plan.heads())
      fail(folder, fmt::format("dataset.json's regions_class_order has {} entries for {} regions",
                               plan.regions_class_order.size(), plan.heads()));
  }
}

}  // namespace

std::vector<int> Plan::all_labels() const {
  std::set<int> s;
  for (const Label& l : labels) s.insert(l.values.begin(), l.values.end());
  return {s.begin(), s.end()};
}

int Plan::heads() const {
  if (!has_regions) return int(all_labels().size());
  int n = 0;  // foreground regions: all but those made only of background
  for (const Label& l : labels)
    if (std::any_of(l.values.begin(), l.values.end(), [](int v) { return v != 0; })) ++n;
  return n;
}

fs::path Plan::checkpoint(const std::string& fold, const std::string& which) const {
  const auto it = folds.find(fold);
  if (it == folds.end()) fail(folder, fmt::format("fold_{} is missing", fold));
  for (const fs::path& p : it->second)
    if (p.filename() == "checkpoint_" + which + ".pth") return p;
  fail(folder, fmt::format("fold_{} has no checkpoint_{}.pth", fold, which));
}

Plan read_results_folder(const fs::path& folder_in) {
  const fs::path folder = folder_in.has_filename() ? folder_in : folder_in.parent_path();
  if (!fs::is_directory(folder)) fail(folder, "not a folder");
  Plan plan;
  plan.folder = folder;
  // <trainer>__<plans>__<configuration>
  const std::string leaf = folder.filename().string();
  const auto a = leaf.find("__"), b = leaf.rfind("__");
  if (a == std::string::npos || a == b)
    fail(folder, "the folder name is not <trainer>__<plans>__<configuration>");
  plan.trainer = leaf.substr(0, a);
  plan.plans_name = leaf.substr(a + 2, b - a - 2);
  plan.configuration = leaf.substr(b + 2);
  const ojson plans = read_json(folder, "plans.json");
  const ojson dataset = read_json(folder, "dataset.json");
  try {
    plan.dataset_name = plans.value("dataset_name", folder.parent_path().filename().string());
    if (!plans.contains("configurations")) fail(folder, "plans.json has no configurations");
    const ojson c = configuration(folder, plans, plan.configuration);
    if (plan.configuration == "3d_lowres" || c.contains("previous_stage"))
      fail(folder, fmt::format("configuration '{}' is part of the 3d_lowres cascade, which is not supported "
                               "(use 2d or 3d_fullres)", plan.configuration));
    plan.patch_size = patch_size(folder, c);
    plan.spacing = c.at("spacing").get<std::vector<double>>();
    if (plan.patch_size.size() != plan.spacing.size() || plan.patch_size.size() < 2 || plan.patch_size.size() > 3)
      fail(folder, "the configuration's patch_size and spacing disagree");
    plan.two_d = plan.patch_size.size() == 2;
    const auto tf = plans.at("transpose_forward").get<std::vector<int>>();
    const auto tb = plans.at("transpose_backward").get<std::vector<int>>();
    if (tf.size() != 3 || tb.size() != 3) fail(folder, "plans.json's transposes are not permutations of 3 axes");
    std::copy(tf.begin(), tf.end(), plan.transpose_forward.begin());
    std::copy(tb.begin(), tb.end(), plan.transpose_backward.begin());
    for (int i = 0; i < 3; ++i)
      if (plan.transpose_backward[std::size_t(plan.transpose_forward[std::size_t(i)])] != i)
        fail(folder, "plans.json's transpose_backward does not undo transpose_forward");
    plan.architecture = nlohmann::json::parse(
        (c.contains("architecture") ? c.at("architecture") : legacy_architecture(folder, c)).dump());
    plan.network_class_name = plan.architecture.at("network_class_name").get<std::string>();
    // channels: channel_names (or the older modality), keys "0", "1", ...
    const ojson channels = dataset.contains("channel_names") ? dataset.at("channel_names")
                                                             : dataset.value("modality", ojson::object());
    if (channels.empty()) fail(folder, "dataset.json has no channel_names");
    for (std::size_t i = 0; i < channels.size(); ++i) {
      const std::string key = std::to_string(i);
      if (!channels.contains(key)) fail(folder, fmt::format("dataset.json's channel_names has no entry \"{}\"", key));
      plan.channel_names.push_back(channels.at(key).get<std::string>());
    }
    const auto schemes = c.at("normalization_schemes").get<std::vector<std::string>>();
    const auto masks = c.at("use_mask_for_norm").get<std::vector<bool>>();
    if (schemes.size() != plan.channel_names.size() || masks.size() != schemes.size())
      fail(folder, fmt::format("the configuration has {} normalization schemes for {} channels", schemes.size(),
                               plan.channel_names.size()));
    static const std::set<std::string> known = {"CTNormalization", "ZScoreNormalization", "RescaleTo01Normalization",
                                                "RGBTo01Normalization", "NoNormalization"};
    const ojson intensity = plans.contains("foreground_intensity_properties_per_channel")
                                ? plans.at("foreground_intensity_properties_per_channel")
                                : plans.value("foreground_intensity_properties_by_modality", ojson::object());
    for (std::size_t i = 0; i < schemes.size(); ++i) {
      Normalisation n;
      n.scheme = schemes[i];
      n.use_mask_for_norm = masks[i];
      if (!known.count(n.scheme)) fail(folder, fmt::format("normalization scheme '{}' is not supported", n.scheme));
      if (n.scheme == "CTNormalization") {
        const std::string key = std::to_string(i);
        if (!intensity.contains(key))
          fail(folder, fmt::format("plans.json has no foreground intensity properties for channel {}", i));
        const ojson& p = intensity.at(key);
        n.mean = p.at("mean").get<double>();
        n.std = p.at("std").get<double>();
        n.percentile_00_5 = p.at("percentile_00_5").get<double>();
        n.percentile_99_5 = p.at("percentile_99_5").get<double>();
      }
      plan.normalisation.push_back(n);
    }
    plan.resample_data = resampling(folder, c, "data");
    plan.resample_probabilities = resampling(folder, c, "probabilities");
    read_labels(folder, dataset, plan);
    plan.file_ending = dataset.value("file_ending", std::string());
    // the predictor reads with the plans' reader; dataset.json's overwrite is what planning put there
    plan.reader_name = plans.value("image_reader_writer",
                                   dataset.value("overwrite_image_reader_writer", std::string("SimpleITKIO")));
    plan.reader = reader_of(folder, plan.reader_name);
  } catch (const SegmentationError&) {
    throw;
  } catch (const std::exception& e) {
    fail(folder, fmt::format("plans.json or dataset.json lacks an entry or has one of the wrong type ({})", e.what()));
  }
  try {  // statistics for the review only: a folder whose statistics cannot be read still runs
    plan.profile = dataset_profile(folder, plans, plan.channel_names);
  } catch (const std::exception&) {
    plan.profile = {};
  }
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.rfind("fold_", 0) != 0) continue;
    std::vector<fs::path> found;
    for (const char* c : {"checkpoint_final.pth", "checkpoint_best.pth"})
      if (fs::is_regular_file(entry.path() / c)) found.push_back(entry.path() / c);
    if (!found.empty()) plan.folds[name.substr(5)] = found;
  }
  if (plan.folds.empty()) fail(folder, "no fold_*/checkpoint_final.pth or checkpoint_best.pth");
  return plan;
}

}  // namespace sagitta::segmentation::nnunet
