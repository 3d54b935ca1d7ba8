#pragma once
// What the commands that run a model share (segment, explain): their common parameters, loading
// the model and the inputs, the window options, and the common parts of their reports. As
// pacs_options.h does for the PACS connection: one declaration of each option, one reading.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "parameter_table.h"
#include "sagitta/core/model_card.h"
#include "sagitta/dicom/open_volume.h"
#include "sagitta/segmentation/model.h"
#include "sagitta/segmentation/segment.h"

namespace sagitta::cli {

// ---- parameters --------------------------------------------------------------------------------
// `inputs`: a DICOM folder or volume file per model input channel (positional, several).
Parameter model_inputs_parameter(bool required);
Parameter model_card_parameter();                               // --model
Parameter series_parameter();                                   // --series
Parameter output_folder_parameter(const std::string& holds);    // -o/--output, "Folder for <holds> (created if needed)"
Parameter volume_format_parameter();                            // --format nrrd|nifti
// --device, --threads, --overlap, --batch, --mirror (described by `mirror_description`), --crop-body.
std::vector<Parameter> inference_parameters(const std::string& mirror_description);
Parameter json_parameter();                                     // --json (command line only)
Parameter no_progress_parameter();                              // --no-progress (command line only)

// ---- steps -------------------------------------------------------------------------------------
// ".nii.gz" for --format nifti, else ".nrrd".
std::string volume_extension(const Arguments& a);
// The card's model on --device with --threads; a note on stderr when CUDA was asked for and absent.
segmentation::Model load_model(const ModelCard& card, const Arguments& a, const std::string& where);

// --folds and --checkpoint: which weights of an nnU-Net results folder run; --review-profile: a
// calibration's training profile and thresholds for a model folder.
std::vector<Parameter> model_source_parameters();
// The model --model names (a card, a model folder, a MONAI bundle or an nnU-Net results folder)
// as a card, with --folds, --checkpoint and --review-profile.
ModelCard open_model(const Arguments& a);
// Every input (--series, --threads); `purpose` names the command in the one-volume refusal.
std::vector<dicom::OpenedVolume> open_inputs(const std::vector<std::string>& paths, const Arguments& a,
                                             const std::string& purpose);
std::vector<Image::Pointer> volumes_of(const std::vector<dicom::OpenedVolume>& inputs);
// --overlap, --batch, --mirror, --crop-body.
void apply_inference_options(const Arguments& a, segmentation::SegmentOptions& options);

// ---- reports -----------------------------------------------------------------------------------
// The card (path, hashes, name, version, format) and the device the model ran on.
nlohmann::json model_json(const std::filesystem::path& card_path, const ModelCard& card, const segmentation::Model& model);
nlohmann::json inputs_json(const std::vector<dicom::OpenedVolume>& inputs);

// Seconds since construction (or the last lap).
class Stopwatch {
public:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  double lap() {
    const double s = seconds();
    start_ = std::chrono::steady_clock::now();
    return s;
  }

private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace sagitta::cli
