// Finding DICOM images in folders and grouping them into stacks that each make one volume (or one
// multi-volume series) (the declarations and their contract: sagitta/dicom/scan.h).
#include "sagitta/dicom/scan.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "frame_attributes.h"
#include "nesting.h"
#include "parallel_for.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/text.h"
#include "stack_geometry.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;

namespace {

// Element values longer than this stay in the file during scanning (pixel data, big private
// blobs); they are read when load() needs them.
constexpr Uint32 kHeaderReadLimit = 16384;

struct FileOutcome {
  std::optional<detail::HeaderRecord> header;
  std::string skipped;  // reason, when header is empty
};

bool is_uncompressed(E_TransferSyntax xfer) {
  const DcmXfer x(xfer);
  return !x.isEncapsulated();
}

FileOutcome read_file(const fs::path& path) {
  FileOutcome out;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec || size == 0) {
    out.skipped = "empty or unreadable file";
    return out;
  }
  // DCMTK parses nested sequences recursively: refuse hostile nesting before it does.
  if (auto problem = detail::nesting_problem(path); !problem.empty()) {
    out.skipped = std::move(problem);
    return out;
  }
  DcmFileFormat file;
  const OFCondition status =
      file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, kHeaderReadLimit, ERM_autoDetect);
  if (status.bad()) {
    out.skipped = std::string("not a readable DICOM file (") + status.text() + ")";
    return out;
  }
  DcmDataset& d = *file.getDataset();
  // The meta header's values are raw bytes that end up in reports: made valid UTF-8 here.
  OFString media_class_raw;
  file.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, media_class_raw);
  const std::string media_class = valid_utf8(media_class_raw.c_str());
  if (media_class == UID_MediaStorageDirectoryStorage || d.tagExists(DCM_DirectoryRecordSequence)) {
    out.skipped = "DICOMDIR index file; the images it lists are found by scanning the folders";
    return out;
  }
  DcmElement* pixels = nullptr;
  if (d.findAndGetElement(DCM_PixelData, pixels).bad() || !pixels) {
    OFString sop_class;
    d.findAndGetOFString(DCM_SOPClassUID, sop_class);
    if (sop_class.empty() && !d.tagExists(DCM_Rows))
      out.skipped = "not DICOM (no recognisable DICOM attributes)";
    else
      out.skipped = std::string("no pixel data (SOP class ") +
                    (sop_class.empty() ? "unknown" : dcmFindNameOfUID(sop_class.c_str(), sop_class.c_str())) +
                    ")";
    return out;
  }
  const E_TransferSyntax xfer = d.getOriginalXfer();
  const std::string ts_uid = DcmXfer(xfer).getXferID();
  try {
    out.header = detail::read_header(d, path.string(), ts_uid);
  } catch (const DicomError& e) {
    out.skipped = e.what();
    out.header.reset();
    return out;
  }
  // Anonymisers sometimes blank the dataset's SOP UIDs but keep the meta header's copies.
  OFString meta_instance_raw;
  file.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPInstanceUID, meta_instance_raw);
  const std::string meta_instance = valid_utf8(meta_instance_raw.c_str());
  for (auto& f : out.header->frames) {
    if (f.sop_instance_uid.empty()) f.sop_instance_uid = meta_instance;
    if (f.sop_class_uid.empty()) f.sop_class_uid = media_class;
  }
  if (out.header->info.sop_class_uid.empty()) out.header->info.sop_class_uid = media_class;
  // Truncated or short pixel data is caught here for uncompressed files, before load().
  if (is_uncompressed(xfer)) {
    const auto& f = out.header->format;
    const double expected =
        double(f.rows) * f.columns * f.number_of_frames * f.samples_per_pixel * (f.bits_allocated / 8);
    if (double(pixels->getLength()) < expected) {
      out.skipped = fmt::format(
          "pixel data holds {} bytes but {}x{}x{} frames of {} bits need {:.0f}: truncated file or "
          "wrong Rows/Columns",
          pixels->getLength(), f.columns, f.rows, f.number_of_frames, f.bits_allocated, expected);
      out.header.reset();
    }
  }
  return out;
}

std::vector<fs::path> collect_files(const std::vector<fs::path>& inputs, bool recursive,
                                    std::vector<Decision>& decisions) {
  std::vector<fs::path> files;
  for (const auto& input : inputs) {
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      const auto opts = fs::directory_options::skip_permission_denied;
      if (recursive) {
        for (fs::recursive_directory_iterator it(input, opts, ec), end; !ec && it != end; it.increment(ec))
          if (it->is_regular_file(ec)) files.push_back(it->path());
      } else {
        for (fs::directory_iterator it(input, opts, ec), end; !ec && it != end; it.increment(ec))
          if (it->is_regular_file(ec)) files.push_back(it->path());
      }
      if (ec) decisions.push_back({input.string(), "could not list the whole folder: " + ec.message()});
    } else if (fs::is_regular_file(input, ec)) {
      files.push_back(input);
    } else {
      throw DicomError(input.string() + ": no such file or folder");
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

std::string orientation_name(const std::array<double, 6>& o) {
  const double n[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
  const double ax = std::abs(n[0]), ay = std::abs(n[1]), az = std::abs(n[2]);
  const double m = std::max({ax, ay, az});
  std::string name = m == az ? "axial" : m == ay ? "coronal" : "sagittal";
  // More than ~10 degrees off the nearest cardinal plane.
  if (m < 0.985) name = "oblique " + name;
  return name;
}

// Frames of one series split into groups that can each form a volume.
struct Group {
  std::vector<Frame> frames;
  std::string reason;
};

bool same_plane_kind(const Frame& a, const Frame& b) {
  for (int i = 0; i < 6; ++i)
    if (std::abs(a.orientation[i] - b.orientation[i]) > 1e-3) return false;
  return a.rows == b.rows && a.columns == b.columns && a.localizer == b.localizer &&
         a.echo_number == b.echo_number && a.image_kind == b.image_kind &&
         std::abs(a.pixel_spacing[0] - b.pixel_spacing[0]) <= 1e-4 * a.pixel_spacing[0] &&
         std::abs(a.pixel_spacing[1] - b.pixel_spacing[1]) <= 1e-4 * a.pixel_spacing[1];
}

std::string difference(const Frame& a, const Frame& main) {
  if (a.localizer != main.localizer) return "localizer images (ImageType LOCALIZER)";
  for (int i = 0; i < 6; ++i)
    if (std::abs(a.orientation[i] - main.orientation[i]) > 1e-3) {
      // The angle between the slice normals says how different the planes are.
      auto normal = [](const std::array<double, 6>& o) {
        return std::array<double, 3>{o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
      };
      const auto n1 = normal(a.orientation), n2 = normal(main.orientation);
      const double c = std::clamp(n1[0] * n2[0] + n1[1] * n2[1] + n1[2] * n2[2], -1.0, 1.0);
      return fmt::format("orientation differs ({} vs {}, planes {:.1f} degrees apart)", orientation_name(a.orientation),
                         orientation_name(main.orientation), std::acos(std::abs(c)) * 180.0 / 3.14159265358979323846);
    }
  if (a.rows != main.rows || a.columns != main.columns)
    return fmt::format("image size differs ({}x{} vs {}x{})", a.columns, a.rows, main.columns, main.rows);
  if (a.echo_number != main.echo_number) return fmt::format("echo {}", a.echo_number);
  if (a.image_kind != main.image_kind)
    return fmt::format("{} images (ImageType {})", a.image_kind.empty() ? "magnitude" : a.image_kind, a.image_type);
  return "pixel spacing differs";
}

std::vector<Group> split_series(std::vector<Frame> frames) {
  std::vector<Group> groups;
  for (auto& f : frames) {
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const Group& g) { return same_plane_kind(g.frames.front(), f); });
    if (it == groups.end()) {
      groups.push_back({});
      it = std::prev(groups.end());
    }
    it->frames.push_back(std::move(f));
  }
  // Positions that repeat unevenly within a group: separate acquisitions when their numbers differ.
  std::vector<Group> out;
  for (auto& g : groups) {
    bool uneven = false;
    try {
      const auto clusters = detail::position_clusters(g.frames);
      for (const auto& c : clusters) uneven |= c.size() != clusters.front().size();
    } catch (const DicomError&) {
      uneven = true;
    }
    std::map<int, std::vector<Frame>> by_acq;
    for (auto& f : g.frames) by_acq[f.acquisition_number].push_back(f);
    if (uneven && by_acq.size() > 1) {
      for (auto& [acq, fr] : by_acq) out.push_back({std::move(fr), fmt::format("acquisition {}", acq)});
    } else {
      out.push_back(std::move(g));
    }
  }
  // The main stack first: not a localizer, most frames.
  std::stable_sort(out.begin(), out.end(), [](const Group& a, const Group& b) {
    if (a.frames.front().localizer != b.frames.front().localizer) return !a.frames.front().localizer;
    return a.frames.size() > b.frames.size();
  });
  if (out.size() > 1)
    for (std::size_t i = 1; i < out.size(); ++i)
      if (out[i].reason.empty()) out[i].reason = difference(out[i].frames.front(), out[0].frames.front());
  return out;
}

long series_number_value(const std::string& s) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  return (end && *end == '\0' && !s.empty()) ? v : 1L << 30;
}

}  // namespace

std::string Stack::orientation_label() const {
  return frames.empty() ? "unknown" : orientation_name(frames.front().orientation);
}

ScanResult scan(const std::vector<fs::path>& inputs, const ScanOptions& options) {
  register_codecs();
  ScanResult result;
  const auto files = collect_files(inputs, options.recursive, result.decisions);
  result.files_seen = files.size();

  // Series UID -> (descriptors, frames), in file order.
  std::map<std::string, std::pair<SeriesInfo, std::vector<Frame>>> series;
  std::vector<std::string> series_order;
  std::map<std::string, std::string> instance_paths;  // SOPInstanceUID -> first file
  // Files are read in batches and each batch's headers merged at once, so that memory holds the
  // frames a scan returns and not every file's full header record (flat for 100,000 files).
  constexpr std::size_t kBatch = 2048;
  for (std::size_t start = 0; start < files.size(); start += kBatch) {
    const std::size_t n = std::min(kBatch, files.size() - start);
    std::vector<FileOutcome> outcomes(n);
    detail::parallel_for(n, options.threads, [&](std::size_t i) {
      // One bad file never ends the scan: whatever it throws becomes its decision.
      try {
        outcomes[i] = read_file(files[start + i]);
      } catch (const std::exception& e) {
        outcomes[i] = {};
        outcomes[i].skipped = std::string("unreadable (") + e.what() + ")";
      }
    });
    for (std::size_t j = 0; j < n; ++j) {
      const fs::path& file = files[start + j];
      auto& o = outcomes[j];
      if (!o.header) {
        result.decisions.push_back({file.string(), "skipped: " + o.skipped});
        continue;
      }
      ++result.files_used;
      for (const auto& note : o.header->notes) result.decisions.push_back({file.string(), note});
      std::string key = o.header->info.series_instance_uid;
      if (key.empty()) {
        key = "no-uid:" + o.header->info.study_instance_uid + ":" + o.header->info.series_number;
        result.decisions.push_back({file.string(), "no SeriesInstanceUID; grouped by study and series number"});
      }
      // The same instance in two files (copied studies, exports next to originals) is read once.
      const std::string& uid = o.header->frames.front().sop_instance_uid;
      if (!uid.empty()) {
        auto [first_path, fresh] = instance_paths.try_emplace(uid, file.string());
        if (!fresh) {
          --result.files_used;
          result.decisions.push_back({file.string(), "skipped: duplicate of instance " + uid + " in " + first_path->second});
          continue;
        }
      }
      auto [it, inserted] = series.try_emplace(key, o.header->info, std::vector<Frame>{});
      if (inserted) series_order.push_back(key);
      auto& frames = it->second.second;
      frames.insert(frames.end(), std::make_move_iterator(o.header->frames.begin()),
                    std::make_move_iterator(o.header->frames.end()));
      o.header.reset();
    }
  }
  if (series.empty()) {
    std::string why = result.decisions.empty() ? "no files" : result.decisions.front().what;
    std::string where = inputs.size() == 1 ? inputs.front().string() : std::to_string(inputs.size()) + " inputs";
    throw DicomError(fmt::format("no loadable DICOM images in {} ({} files; first: {})", where,
                                 result.files_seen, why));
  }

  std::set<std::string> used_ids;
  for (const auto& key : series_order) {
    auto& [info, frames] = series[key];
    auto groups = split_series(std::move(frames));
    // Ids are series numbers, made unique with "-2", "-3"... when several series share one.
    const std::string number = info.series_number.empty() ? "x" : info.series_number;
    std::string base = number;
    for (int k = 2; used_ids.count(base) || used_ids.count(base + ".1"); ++k) base = number + "-" + std::to_string(k);
    for (std::size_t g = 0; g < groups.size(); ++g) {
      Stack stack;
      stack.id = groups.size() == 1 ? base : base + "." + std::to_string(g + 1);
      stack.info = info;
      stack.frames = std::move(groups[g].frames);
      stack.split_reason = groups[g].reason;
      if (!stack.split_reason.empty())
        result.decisions.push_back({"series " + info.series_number + " (" + info.series_instance_uid + ")",
                                    fmt::format("stack {} split off: {} ({} images)", stack.id,
                                                stack.split_reason, stack.frames.size())});
      used_ids.insert(stack.id);
      result.stacks.push_back(std::move(stack));
    }
  }
  std::stable_sort(result.stacks.begin(), result.stacks.end(), [](const Stack& a, const Stack& b) {
    return std::make_tuple(a.info.study_date, a.info.study_time, a.info.study_instance_uid,
                           series_number_value(a.info.series_number)) <
           std::make_tuple(b.info.study_date, b.info.study_time, b.info.study_instance_uid,
                           series_number_value(b.info.series_number));
  });
  return result;
}

const Stack& select_stack(const ScanResult& scan, const std::string& selector) {
  auto describe = [&]() {
    std::string list;
    for (const auto& s : scan.stacks)
      list += fmt::format("{}{} ({} {}, {} images{})", list.empty() ? "" : "; ", s.id,
                          s.info.modality, s.info.series_description, s.frames.size(),
                          s.split_reason.empty() ? "" : ", " + s.split_reason);
    return list;
  };
  if (selector.empty()) {
    if (scan.stacks.size() == 1) return scan.stacks.front();
    // One series whose other stacks are localizers: its main stack is the obvious choice.
    const Stack* main = nullptr;
    int non_localizers = 0;
    bool one_series = true;
    for (const auto& s : scan.stacks) {
      one_series &= s.info.series_instance_uid == scan.stacks.front().info.series_instance_uid;
      if (!s.frames.front().localizer) {
        main = &s;
        ++non_localizers;
      }
    }
    if (one_series && non_localizers == 1) return *main;
    throw DicomError(fmt::format("{} stacks found; choose one with --series: {}", scan.stacks.size(), describe()));
  }
  for (const auto& s : scan.stacks)
    if (s.id == selector) return s;
  std::vector<const Stack*> matches;
  for (const auto& s : scan.stacks)
    if (s.info.series_instance_uid == selector || s.info.series_number == selector) matches.push_back(&s);
  if (matches.size() == 1) return *matches.front();
  if (matches.size() > 1) {
    // A series whose other stacks are only localizers means its main stack.
    std::vector<const Stack*> non_localizer;
    for (const auto* s : matches)
      if (!s->frames.front().localizer) non_localizer.push_back(s);
    if (non_localizer.size() == 1) return *non_localizer.front();
    throw DicomError(fmt::format("series '{}' has {} stacks; choose one by its id: {}", selector,
                                 matches.size(), describe()));
  }
  throw DicomError(fmt::format("no series or stack '{}'; found: {}", selector, describe()));
}

}  // namespace sagitta::dicom
