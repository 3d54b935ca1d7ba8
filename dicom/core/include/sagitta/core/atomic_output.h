#pragma once
// Outputs that appear whole or not at all. A file is written under a temporary name in its own
// folder and renamed into place when complete; a set of outputs (a command's output folder) is
// staged in a hidden folder and renamed into place together. A failure, a crash or a cancel
// leaves no partial output behind and never touches anything else in the folder.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace sagitta {

// The temporary name `path` is written under: hidden, in the same folder, ending in the same
// file name (ITK chooses a format by the extension).
std::filesystem::path temporary_path(const std::filesystem::path& path);

// Throws Error naming the problem when `path` cannot become a file: its folder does not exist or
// is not writable, or `path` is a folder.
void check_output_file(const std::filesystem::path& path);

// Writes `path` through `write(temporary path)`, then renames it into place. On failure the
// temporary is removed and the exception propagates.
void write_atomically(const std::filesystem::path& path, const std::function<void(const std::filesystem::path&)>& write);

// A text file (JSON, CSV, XML...), atomically. Throws Error when it cannot be written.
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

// A command's outputs inside one folder, staged in a hidden sub-folder until commit().
class StagedOutputs {
public:
  // Creates `folder` when missing (and removes it again if nothing is committed and it is still
  // empty). Throws Error when `folder` exists and is not a folder.
  explicit StagedOutputs(std::filesystem::path folder);
  StagedOutputs(const StagedOutputs&) = delete;
  StagedOutputs& operator=(const StagedOutputs&) = delete;
  // Without commit(): the staging folder goes, and `folder` too when this object created it and
  // it is empty.
  ~StagedOutputs();

  // Where output `name` (a file name, or a relative path inside the folder) is written now;
  // recorded so that commit() moves it. Parent folders are created.
  std::filesystem::path add(const std::string& name);
  // The staged location of an output added before.
  std::filesystem::path staged(const std::string& name) const;
  const std::vector<std::string>& names() const { return names_; }
  const std::filesystem::path& folder() const { return folder_; }

  // Moves every added output into the folder (replacing older files of the same name), removes
  // the staging folder.
  void commit();

private:
  std::filesystem::path folder_, staging_;
  std::vector<std::string> names_;
  bool created_ = false, committed_ = false;
};

}  // namespace sagitta
