// Softmax, argmax, connected-component rules, hole filling and label statistics.
#include "sagitta/segmentation/postprocess.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "sagitta/core/image.h"
#include "sagitta/segmentation/error.h"
#include "scores.h"

namespace sagitta::segmentation {
namespace {

void check_scores(const std::vector<Image::Pointer>& scores) {
  if (scores.empty()) throw SegmentationError("no class scores");
  for (const auto& s : scores)
    if (s->GetBufferedRegion() != scores[0]->GetBufferedRegion())
      throw SegmentationError("class scores on different grids");
}

// Connected components of equal label values (6-connectivity), all labels in one pass.
struct Components {
  std::vector<std::int32_t> id;            // per voxel; -1 for background (label 0)
  std::vector<std::uint16_t> label;        // per component
  std::vector<std::size_t> size;           // per component
  std::vector<bool> touches_border;        // per component
};

Components components(const LabelImage& image, bool include_background) {
  const auto s = image.GetBufferedRegion().GetSize();
  const long nx = long(s[0]), ny = long(s[1]), nz = long(s[2]);
  const std::size_t n = std::size_t(nx * ny * nz);
  const std::uint16_t* v = image.GetBufferPointer();
  Components c;
  c.id.assign(n, -1);
  std::vector<std::size_t> stack;
  for (std::size_t start = 0; start < n; ++start) {
    if (c.id[start] >= 0 || (!include_background && v[start] == 0)) continue;
    const std::int32_t cid = std::int32_t(c.label.size());
    const std::uint16_t value = v[start];
    c.label.push_back(value);
    c.size.push_back(0);
    c.touches_border.push_back(false);
    c.id[start] = cid;
    stack.push_back(start);
    while (!stack.empty()) {
      const std::size_t i = stack.back();
      stack.pop_back();
      ++c.size.back();
      const long x = long(i % std::size_t(nx)), y = long(i / std::size_t(nx) % std::size_t(ny)),
                 z = long(i / std::size_t(nx * ny));
      if (x == 0 || y == 0 || z == 0 || x == nx - 1 || y == ny - 1 || z == nz - 1) c.touches_border.back() = true;
      auto visit = [&](bool inside, std::size_t j) {
        if (inside && c.id[j] < 0 && v[j] == value) {
          c.id[j] = cid;
          stack.push_back(j);
        }
      };
      visit(x > 0, i - 1);
      visit(x < nx - 1, i + 1);
      visit(y > 0, i - std::size_t(nx));
      visit(y < ny - 1, i + std::size_t(nx));
      visit(z > 0, i - std::size_t(nx * ny));
      visit(z < nz - 1, i + std::size_t(nx * ny));
    }
  }
  return c;
}

// The number of connected components (6-connectivity) of every label value; one bit of state per
// voxel, so it runs on volumes whose component ids would not fit.
std::map<std::uint16_t, std::size_t> component_counts(const LabelImage& image) {
  const auto s = image.GetBufferedRegion().GetSize();
  const std::size_t nx = s[0], ny = s[1], nz = s[2], plane = nx * ny, n = plane * nz;
  const std::uint16_t* v = image.GetBufferPointer();
  std::vector<bool> seen(n, false);
  std::map<std::uint16_t, std::size_t> counts;
  std::vector<std::size_t> stack;
  for (std::size_t start = 0; start < n; ++start) {
    if (seen[start] || v[start] == 0) continue;
    const std::uint16_t value = v[start];
    ++counts[value];
    seen[start] = true;
    stack.push_back(start);
    while (!stack.empty()) {
      const std::size_t i = stack.back();
      stack.pop_back();
      const std::size_t x = i % nx, y = i / nx % ny, z = i / plane;
      auto visit = [&](bool inside, std::size_t j) {
        if (inside && !seen[j] && v[j] == value) {
          seen[j] = true;
          stack.push_back(j);
        }
      };
      visit(x > 0, i - 1);
      visit(x + 1 < nx, i + 1);
      visit(y > 0, i - nx);
      visit(y + 1 < ny, i + nx);
      visit(z > 0, i - plane);
      visit(z + 1 < nz, i + plane);
    }
  }
  return counts;
}

}  // namespace

namespace detail {

void softmax_in_place(const std::vector<float*>& planes, std::size_t n) {
  const std::size_t k = planes.size();
  for (std::size_t i = 0; i < n; ++i) {
    float m = planes[0][i];
    for (std::size_t c = 1; c < k; ++c) m = std::max(m, planes[c][i]);
    float sum = 0;
    for (std::size_t c = 0; c < k; ++c) sum += (planes[c][i] = std::exp(planes[c][i] - m));
    const float inv = 1.0f / sum;
    for (std::size_t c = 0; c < k; ++c) planes[c][i] *= inv;
  }
}

void argmax_into(const std::vector<const float*>& planes, std::size_t n, std::uint16_t* out) {
  std::fill_n(out, n, std::uint16_t(0));
  std::vector<float> best(planes[0], planes[0] + n);
  for (std::size_t c = 1; c < planes.size(); ++c) {
    const float* p = planes[c];
    for (std::size_t i = 0; i < n; ++i)
      if (p[i] > best[i]) best[i] = p[i], out[i] = std::uint16_t(c);
  }
}

void region_labels_into(const std::vector<const float*>& planes, const std::vector<std::uint16_t>& values,
                        std::size_t n, std::uint16_t* out) {
  std::fill_n(out, n, std::uint16_t(0));
  for (std::size_t r = 0; r < values.size() && r < planes.size(); ++r)
    for (std::size_t i = 0; i < n; ++i)
      if (planes[r][i] > 0) out[i] = values[r];
}

void confidence_from_scores(const std::vector<const float*>& planes, std::size_t n, bool sigmoid, float* top,
                            float* entropy, std::uint16_t* argmax) {
  const std::size_t k = planes.size();
  if (sigmoid) {
    constexpr double kLn2 = 0.69314718055994531;
    for (std::size_t i = 0; i < n; ++i) {
      double least = 1, h = 0;
      for (std::size_t c = 0; c < k; ++c) {
        const double p = 1.0 / (1.0 + std::exp(-double(planes[c][i])));
        least = std::min(least, std::max(p, 1 - p));
        if (p > 0 && p < 1) h -= p * std::log(p) + (1 - p) * std::log(1 - p);
      }
      top[i] = float(least);
      entropy[i] = k ? float(h / (kLn2 * double(k))) : 0.0f;
    }
    return;
  }
  // With e_c = exp(l_c - m) and S = sum e_c: p_c = e_c / S, max p = 1 / S (m is the largest logit),
  // and H = -sum p_c ln p_c = ln S - sum e_c (l_c - m) / S: one exp per class, one log per voxel.
  // Voxels go in runs of kRun, each class plane read along the run (not 100+ planes per voxel);
  // the exponentials in float (their error, ~1e-7, is far below what a review reads), the sums in
  // double. The argmax falls out of the maximum's search: the first class of the largest score.
  constexpr std::size_t kRun = 256;
  const double ln_k = k > 1 ? std::log(double(k)) : 1.0;
  float m[kRun];
  double sum[kRun], weighted[kRun];
  for (std::size_t i0 = 0; i0 < n; i0 += kRun) {
    const std::size_t len = std::min(kRun, n - i0);
    std::copy_n(planes[0] + i0, len, m);
    if (argmax) std::fill_n(argmax + i0, len, std::uint16_t(0));
    for (std::size_t c = 1; c < k; ++c) {
      const float* p = planes[c] + i0;
      for (std::size_t j = 0; j < len; ++j)
        if (p[j] > m[j]) {
          m[j] = p[j];
          if (argmax) argmax[i0 + j] = std::uint16_t(c);
        }
    }
    std::fill_n(sum, len, 0.0);
    std::fill_n(weighted, len, 0.0);
    for (std::size_t c = 0; c < k; ++c) {
      const float* p = planes[c] + i0;
      for (std::size_t j = 0; j < len; ++j) {
        const float d = p[j] - m[j];
        const double e = std::exp(d);
        sum[j] += e;
        weighted[j] += e * double(d);
      }
    }
    for (std::size_t j = 0; j < len; ++j) {
      top[i0 + j] = float(1.0 / sum[j]);
      entropy[i0 + j] = float(std::max(0.0, std::log(sum[j]) - weighted[j] / sum[j]) / ln_k);
    }
  }
}

}  // namespace detail

void softmax(std::vector<Image::Pointer>& scores) {
  check_scores(scores);
  std::vector<float*> p;
  for (auto& s : scores) p.push_back(s->GetBufferPointer());
  detail::softmax_in_place(p, scores[0]->GetBufferedRegion().GetNumberOfPixels());
}

LabelImage::Pointer argmax(const std::vector<Image::Pointer>& scores) {
  check_scores(scores);
  if (scores.size() > 65536) throw SegmentationError("too many classes for a 16-bit label map");
  auto labels = LabelImage::New();
  labels->SetRegions(scores[0]->GetLargestPossibleRegion());
  labels->CopyInformation(scores[0]);
  sagitta::allocate_huge(labels.GetPointer());
  std::vector<const float*> p;
  for (const auto& s : scores) p.push_back(s->GetBufferPointer());
  detail::argmax_into(p, scores[0]->GetBufferedRegion().GetNumberOfPixels(), labels->GetBufferPointer());
  return labels;
}

std::vector<std::string> postprocess(LabelImage& labels, const PostprocessOptions& options) {
  std::vector<std::string> decisions;
  if (!options.largest_component && !options.fill_holes && options.min_component_voxels == 0) return decisions;
  const std::set<int> selected(options.labels.begin(), options.labels.end());
  auto applies = [&](int label) { return label != 0 && (selected.empty() || selected.count(label)); };
  std::uint16_t* v = labels.GetBufferPointer();
  const std::size_t n = labels.GetBufferedRegion().GetNumberOfPixels();

  if (options.largest_component || options.min_component_voxels > 0) {
    const Components c = components(labels, false);
    std::map<int, std::size_t> largest;  // label -> component id
    for (std::size_t k = 0; k < c.size.size(); ++k) {
      auto it = largest.find(c.label[k]);
      if (it == largest.end() || c.size[k] > c.size[it->second]) largest[c.label[k]] = k;
    }
    std::vector<bool> drop(c.size.size(), false);
    std::map<int, std::pair<std::size_t, std::size_t>> dropped;  // label -> (components, voxels)
    for (std::size_t k = 0; k < c.size.size(); ++k) {
      if (!applies(c.label[k])) continue;
      drop[k] = (options.largest_component && largest[c.label[k]] != k) ||
                (options.min_component_voxels > 0 && c.size[k] < options.min_component_voxels);
      if (drop[k]) dropped[c.label[k]].first++, dropped[c.label[k]].second += c.size[k];
    }
    for (std::size_t i = 0; i < n; ++i)
      if (c.id[i] >= 0 && drop[std::size_t(c.id[i])]) v[i] = 0;
    for (const auto& [label, d] : dropped)
      decisions.push_back(fmt::format("label {}: removed {} component(s), {} voxels ({})", label, d.first, d.second,
                                      options.largest_component ? "not the largest" : "below the minimum size"));
  }

  if (options.fill_holes) {
    // A hole is a background component that touches neither the volume's border nor any label but one.
    const Components c = components(labels, true);
    const auto s = labels.GetBufferedRegion().GetSize();
    const std::size_t nx = s[0], nxy = s[0] * s[1];
    std::vector<int> neighbour(c.size.size(), -1);  // -1 none yet, -2 several
    for (std::size_t i = 0; i < n; ++i) {
      if (v[i] == 0) continue;
      const std::size_t x = i % nx, y = i / nx % s[1], z = i / nxy;
      auto look = [&](bool inside, std::size_t j) {
        if (!inside || v[j] != 0) return;
        int& nb = neighbour[std::size_t(c.id[j])];
        if (nb == -1) nb = v[i];
        else if (nb != v[i]) nb = -2;
      };
      look(x > 0, i - 1);
      look(x + 1 < nx, i + 1);
      look(y > 0, i - nx);
      look(y + 1 < s[1], i + nx);
      look(z > 0, i - nxy);
      look(z + 1 < s[2], i + nxy);
    }
    std::map<int, std::pair<std::size_t, std::size_t>> filled;
    std::vector<int> fill_with(c.size.size(), 0);
    for (std::size_t k = 0; k < c.size.size(); ++k)
      if (c.label[k] == 0 && !c.touches_border[k] && neighbour[k] > 0 && applies(neighbour[k])) {
        fill_with[k] = neighbour[k];
        filled[neighbour[k]].first++, filled[neighbour[k]].second += c.size[k];
      }
    for (std::size_t i = 0; i < n; ++i)
      if (v[i] == 0 && fill_with[std::size_t(c.id[i])]) v[i] = std::uint16_t(fill_with[std::size_t(c.id[i])]);
    for (const auto& [label, f] : filled)
      decisions.push_back(fmt::format("label {}: filled {} hole(s), {} voxels", label, f.first, f.second));
  }
  return decisions;
}

std::vector<LabelStatistics> label_statistics(const LabelImage& labels, const Image* intensity, const ModelCard& card) {
  if (intensity && intensity->GetBufferedRegion() != labels.GetBufferedRegion())
    throw SegmentationError("intensity image and label map are on different grids");
  const int classes = std::max(card.num_classes(), 1);
  std::vector<std::size_t> count(std::size_t(classes) + 1, 0);
  std::vector<double> sum(count.size(), 0);
  std::vector<std::array<long, 3>> lo(count.size(), {std::numeric_limits<long>::max(), std::numeric_limits<long>::max(),
                                                      std::numeric_limits<long>::max()});
  std::vector<std::array<long, 3>> hi(count.size(), {-1, -1, -1});
  const auto s = labels.GetBufferedRegion().GetSize();
  const std::uint16_t* v = labels.GetBufferPointer();
  const float* in = intensity ? intensity->GetBufferPointer() : nullptr;
  std::size_t i = 0;
  for (long z = 0; z < long(s[2]); ++z)
    for (long y = 0; y < long(s[1]); ++y)
      for (long x = 0; x < long(s[0]); ++x, ++i) {
        const std::size_t l = std::min<std::size_t>(v[i], std::size_t(classes));  // unknown values count apart
        ++count[l];
        if (in) sum[l] += in[i];
        auto& a = lo[l];
        auto& b = hi[l];
        a[0] = std::min(a[0], x), a[1] = std::min(a[1], y), a[2] = std::min(a[2], z);
        b[0] = std::max(b[0], x), b[1] = std::max(b[1], y), b[2] = std::max(b[2], z);
      }
  const double voxel_ml = labels.GetSpacing()[0] * labels.GetSpacing()[1] * labels.GetSpacing()[2] / 1000.0;
  const auto pieces = component_counts(labels);
  std::vector<LabelStatistics> out;
  for (const auto& label : card.labels) {
    const std::size_t l = std::size_t(label.value);
    LabelStatistics st;
    st.value = label.value;
    st.name = label.name;
    st.voxels = count[l];
    st.volume_ml = double(count[l]) * voxel_ml;
    if (count[l]) {
      st.bbox_min = lo[l];
      st.bbox_max = hi[l];
      st.mean_intensity = in ? sum[l] / double(count[l]) : 0;
      const auto it = pieces.find(std::uint16_t(label.value));
      st.components = it == pieces.end() ? 0 : it->second;
      for (int a = 0; a < 3; ++a) st.touches_edge |= lo[l][std::size_t(a)] == 0 || hi[l][std::size_t(a)] == long(s[std::size_t(a)]) - 1;
    }
    out.push_back(st);
  }
  return out;
}

nlohmann::json to_json(const LabelStatistics& s) {
  nlohmann::json j = {{"value", s.value}, {"name", s.name}, {"voxels", s.voxels}, {"volume_ml", s.volume_ml}};
  if (s.voxels) {
    j["bbox_min"] = s.bbox_min;
    j["bbox_max"] = s.bbox_max;
    j["mean_intensity"] = s.mean_intensity;
    j["components"] = s.components;
    j["touches_edge"] = s.touches_edge;
  }
  return j;
}

}  // namespace sagitta::segmentation
