#pragma once
// Explanations of segmentations: where did the model look when it labelled this region?
//
// Grad-CAM family (Grad-CAM, Grad-CAM++, HiResCAM) on the layer the model card names, and
// model-agnostic occlusion sensitivity, computed per sliding window and blended with the same
// Gaussian weights as the segmentation, so a heatmap covers the whole volume and comes back in the
// source geometry. The same pass over the windows also yields the segmentation itself and, when
// asked, a voxel-wise predictive entropy (mirroring TTA, MC dropout). Faithfulness (deletion curve)
// and the model-randomisation sanity check are measured on request.
// No LibTorch here: the CLI includes this header.
#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/segmentation/images.h"
#include "sagitta/segmentation/model.h"
#include "sagitta/segmentation/segment.h"

namespace sagitta::explain {

using segmentation::Image;
using segmentation::LabelImage;

enum class Method {
  GradCam,          // channel weights = spatial mean of d score / d activation; ReLU(sum w_k A_k)
  GradCamPlusPlus,  // weights from positive gradients with the ++ pixel coefficients
  HiResCam,         // ReLU(sum_k dS/dA_k * A_k), element-wise (no averaging)
  Occlusion,        // score drop when patches of the input are replaced by 0 (model-agnostic)
};

std::string method_name(Method method);                       // "gradcam", "gradcam++", ...
std::optional<Method> parse_method(const std::string& name);  // nullopt when unknown
// Methods the model supports: the Grad-CAM family needs an activation (native U-Nets, or
// TorchScript models whose forward returns (logits, activation)); occlusion works on any model.
std::vector<Method> available_methods(const sagitta::ModelCard& card);
// Throws ExplainError naming the methods that work when `method` does not.
void check_method(const sagitta::ModelCard& card, Method method);

enum class ScoreReduction { Sum, Mean };  // of the label's logits over the target region

// The region whose score is explained.
struct Region {
  enum class Kind {
    Prediction,  // the voxels the model labels with the target label (per window: its own argmax)
    Box,         // voxel indices of the source volume, inclusive
    Mask,        // non-zero voxels of a volume in any geometry overlapping the source
  };
  Kind kind = Kind::Prediction;
  std::array<long, 6> box{};  // x0 y0 z0 x1 y1 z1
  Image::Pointer mask;
};

// Progress over the passes of an explanation: (stage name, done, total). Return false to cancel
// (explain then throws ExplainError("cancelled")).
using ProgressCallback = std::function<bool(const std::string& stage, int done, int total)>;

struct ExplainOptions {
  Method method = Method::GradCam;
  ScoreReduction score = ScoreReduction::Sum;
  Region region;
  // Preprocessing, windows (overlap, batch, mirroring TTA, Gaussian sigma) and postprocessing as
  // for `segment`: the segmentation comes out of the same pass. window.progress is not used: see
  // `progress`.
  segmentation::SegmentOptions segment;
  bool uncertainty = false;  // predictive entropy from mirroring TTA (+ MC dropout when present)
  int mc_samples = 8;        // MC dropout samples per window (models with dropout only)
  bool deletion = true;      // deletion curve and its area (faithfulness)
  int deletion_windows = 2;  // windows with the largest target the curve is averaged over
  int deletion_steps = 10;   // fractions 0, 1/steps, ..., 1 of the window's voxels removed
  bool sanity = true;        // model-randomisation check: heatmap of a randomised copy, correlation
  unsigned seed = 1;         // randomised weights, random deletion order
  int occlusion_size = 0;    // occluder edge in voxels (0: 1/8 of the patch, at least 4)
  // Labels with an empty target are skipped with a note instead of an error (segment --explain).
  bool skip_empty = false;
  ProgressCallback progress;
};

struct DeletionCurve {
  std::vector<double> fractions;      // of the window's voxels removed, highest heatmap first
  std::vector<double> scores;         // mean probability of the label over the target, relative to none removed
  std::vector<double> random_scores;  // the same, voxels removed in random order (reference)
  double area = 0, random_area = 0;   // trapezoid areas; faithful heatmaps: area < random_area
  int windows = 0;
};

struct LabelExplanation {
  int value = 0;
  std::string name;
  Image::Pointer heatmap;          // source geometry, 0..1
  LabelImage::Pointer target;      // the explained region on the source grid (1 inside)
  std::size_t target_voxels = 0;   // on the source grid
  double raw_max = 0;              // largest blended raw map value (before scaling to 0..1)
  double mass_in_target = 0;       // share of the heatmap's sum inside the target
  std::optional<DeletionCurve> deletion;
  std::optional<double> randomisation_correlation;  // Pearson, model grid
  nlohmann::json report;
};

struct Explanation {
  std::vector<LabelExplanation> labels;
  Image::Pointer uncertainty;                 // source geometry, entropy / log(classes) in 0..1
  segmentation::Segmentation segmentation;    // from the same pass over the windows
  nlohmann::json report;                      // method, windows, timings, decisions, per-label results
};

// Explains `labels` (card names; empty: every foreground label) of `model` on `inputs` (one volume
// per card channel, one grid). Throws ExplainError for an unknown label, a method the model cannot
// run, an empty region; SegmentationError from the model and preprocessing.
Explanation explain(const segmentation::Model& model, const std::vector<Image::Pointer>& inputs,
                    const std::vector<std::string>& labels, const ExplainOptions& options = {});

// Raw (unnormalised) map of one patch: `input` is N x C x [D] x H x W floats (x fastest) as for
// Model::forward; `region` (optional) has N x [D] x H x W bytes, non-zero = target (empty: each
// sample's argmax == label). Returns N x [D] x H x W values. For tests against other runtimes.
std::vector<float> explain_patch(const segmentation::Model& model, const std::vector<float>& input,
                                 const std::vector<std::int64_t>& shape, int label, Method method,
                                 ScoreReduction score = ScoreReduction::Sum,
                                 const std::vector<std::uint8_t>& region = {});

// Pearson correlation of two maps on one grid (0 when either is constant).
double correlation(const Image& a, const Image& b);

}  // namespace sagitta::explain
