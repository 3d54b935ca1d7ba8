// Atomic files and staged output folders (see sagitta/core/atomic_output.h).
#include "sagitta/core/atomic_output.h"

#include <fstream>
#include <unistd.h>

#include "sagitta/core/error.h"

namespace sagitta {
namespace fs = std::filesystem;

fs::path temporary_path(const fs::path& path) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  return dir / (".partial-" + std::to_string(::getpid()) + "-" + path.filename().string());
}

void check_output_file(const fs::path& path) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(path.string() + ": the output folder " + dir.string() + " does not exist");
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error(path.string() + ": the output folder " + dir.string() + " is not writable");
  if (fs::is_directory(path, ec)) throw Error(path.string() + ": is a folder, not a file name");
}

void write_atomically(const fs::path& path, const std::function<void(const fs::path&)>& write) {
  const fs::path tmp = temporary_path(path);
  try {
    write(tmp);
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  write_atomically(path, [&](const fs::path& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    if (!f.flush()) throw Error("cannot write " + path.string());
  });
}

StagedOutputs::StagedOutputs(fs::path folder) : folder_(std::move(folder)) {
  if (folder_.empty()) folder_ = ".";
  if (fs::exists(folder_) && !fs::is_directory(folder_)) throw Error(folder_.string() + " exists and is not a folder");
  created_ = !fs::exists(folder_);
  fs::create_directories(folder_);
  staging_ = folder_ / (".sagitta-partial-" + std::to_string(::getpid()));
  try {
    fs::create_directories(staging_);
  } catch (...) {
    std::error_code ec;
    if (created_) fs::remove(folder_, ec);  // the destructor does not run for a failed constructor
    throw;
  }
}

StagedOutputs::~StagedOutputs() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
  if (created_) fs::remove(folder_, ec);  // only when still empty
}

fs::path StagedOutputs::add(const std::string& name) {
  const fs::path p = staging_ / name;
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  for (const auto& n : names_)
    if (n == name) return p;
  names_.push_back(name);
  return p;
}

fs::path StagedOutputs::staged(const std::string& name) const { return staging_ / name; }

void StagedOutputs::commit() {
  for (const auto& name : names_) {
    const fs::path to = folder_ / name;
    if (to.has_parent_path()) fs::create_directories(to.parent_path());
    fs::rename(staging_ / name, to);
  }
  std::error_code ec;
  fs::remove_all(staging_, ec);
  committed_ = true;
}

}  // namespace sagitta
