// nnU-Net's data path around the network (see nnunet.h): the readers' array conventions,
// transpose, crop to the non-zero region, normalisation, DefaultPreprocessor.run_case_npy and
// export_prediction's way back to the source geometry. Resampling is in nnunet_resample.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/nnunet.h"

namespace sagitta::segmentation::nnunet {

Array::Array(Shape s, float fill) : shape(s), values(std::size_t(s[0] * s[1] * s[2]), fill) {}

// ---- readers -------------------------------------------------------------------------------------

AxisMap reader_axes(Reader reader, const Image& image) {
  AxisMap m;  // SimpleITKIO / NibabelIO: the buffer's z y x
  if (reader != Reader::NibabelWithReorient) return m;
  // nibabel io_orientation of the RAS affine: for each stored axis in turn, the RAS axis its
  // direction is closest to (largest |component| among axes not yet taken) and the sign.
  const auto& d = image.GetDirection();
  double r[3][3];
  for (int row = 0; row < 3; ++row)
    for (int col = 0; col < 3; ++col) r[row][col] = (row < 2 ? -1.0 : 1.0) * d[row][col];  // LPS -> RAS
  std::array<int, 3> out_of{};
  std::array<bool, 3> flip_of{};
  for (int in = 0; in < 3; ++in) {
    int best = 0;
    for (int row = 1; row < 3; ++row)
      if (std::abs(r[row][in]) > std::abs(r[best][in])) best = row;
    out_of[std::size_t(in)] = best;
    flip_of[std::size_t(in)] = r[best][in] < 0;
    for (int col = 0; col < 3; ++col) r[best][col] = 0;
  }
  // the reoriented array is R A S; nnU-Net transposes it to S A R
  for (int in = 0; in < 3; ++in) {
    const int a = 2 - out_of[std::size_t(in)];
    m.source_axis[std::size_t(a)] = in;
    m.flipped[std::size_t(a)] = flip_of[std::size_t(in)];
  }
  return m;
}

namespace {

// For each array voxel (C order) the offset of the ITK buffer voxel it reads: f(array index, buffer index).
template <typename F>
void walk(const Image::SizeType& size, const AxisMap& m, F&& f) {
  const int64_t stride[3] = {1, int64_t(size[0]), int64_t(size[0] * size[1])};
  int64_t n[3], st[3], base = 0;
  for (int a = 0; a < 3; ++a) {
    const int s = m.source_axis[std::size_t(a)];
    n[a] = int64_t(size[std::size_t(s)]);
    st[a] = m.flipped[std::size_t(a)] ? -stride[s] : stride[s];
    if (m.flipped[std::size_t(a)]) base += (n[a] - 1) * stride[s];
  }
  int64_t i = 0;
  for (int64_t a = 0; a < n[0]; ++a)
    for (int64_t b = 0; b < n[1]; ++b) {
      int64_t o = base + a * st[0] + b * st[1];
      for (int64_t c = 0; c < n[2]; ++c, o += st[2]) f(i++, o);
    }
}

Shape array_shape(const Image::SizeType& size, const AxisMap& m) {
  return {int64_t(size[std::size_t(m.source_axis[0])]), int64_t(size[std::size_t(m.source_axis[1])]),
          int64_t(size[std::size_t(m.source_axis[2])])};
}

template <typename ImageT>
typename ImageT::Pointer empty_like(const Properties& p) {
  auto out = ImageT::New();
  typename ImageT::RegionType region(p.index, p.size);
  out->SetRegions(region);
  out->SetOrigin(p.origin);
  out->SetSpacing(p.spacing);
  out->SetDirection(p.direction);
  out->Allocate();
  return out;
}

}  // namespace

Array to_array(const Image& image, const AxisMap& axes, std::array<double, 3>* spacing) {
  const auto size = image.GetBufferedRegion().GetSize();
  Array a(array_shape(size, axes));
  const float* buf = image.GetBufferPointer();
  walk(size, axes, [&](int64_t i, int64_t o) { a.values[std::size_t(i)] = buf[o]; });
  if (spacing)
    for (std::size_t k = 0; k < 3; ++k) (*spacing)[k] = image.GetSpacing()[unsigned(axes.source_axis[k])];
  return a;
}

Image::Pointer as_image(const Array& a) {
  auto img = Image::New();
  Image::SizeType size;
  size[0] = std::size_t(a.shape[2]), size[1] = std::size_t(a.shape[1]), size[2] = std::size_t(a.shape[0]);
  img->SetRegions(Image::RegionType(size));
  img->Allocate();
  std::copy(a.values.begin(), a.values.end(), img->GetBufferPointer());
  return img;
}

Array transpose(const Array& a, const std::array<int, 3>& order) {
  if (order == std::array<int, 3>{0, 1, 2}) return a;
  Shape s{a.shape[std::size_t(order[0])], a.shape[std::size_t(order[1])], a.shape[std::size_t(order[2])]};
  Array out(s);
  const int64_t in_stride[3] = {a.shape[1] * a.shape[2], a.shape[2], 1};
  const int64_t st0 = in_stride[order[0]], st1 = in_stride[order[1]], st2 = in_stride[order[2]];
  std::size_t i = 0;
  for (int64_t x = 0; x < s[0]; ++x)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t z = 0; z < s[2]; ++z) out.values[i++] = a.values[std::size_t(x * st0 + y * st1 + z * st2)];
  return out;
}

// ---- crop ----------------------------------------------------------------------------------------

Box nonzero_box(const std::vector<Array>& channels, std::vector<std::uint8_t>* mask_out) {
  const Shape s = channels.at(0).shape;
  const std::size_t n = std::size_t(s[0] * s[1] * s[2]);
  std::vector<std::uint8_t> mask(n, 0);  // create_nonzero_mask: non-zero in any channel (NaN counts)
  for (const Array& c : channels)
    for (std::size_t i = 0; i < n; ++i) mask[i] |= std::uint8_t(!(c.values[i] == 0.0f));
  // binary_fill_holes (default structure: face connectivity): background reachable from outside
  // the array through background stays background, everything else is filled.
  std::vector<std::uint8_t> outside(n, 0);
  std::vector<int64_t> stack;
  const auto seed = [&](int64_t i, int64_t j, int64_t k) {
    const std::size_t o = std::size_t((i * s[1] + j) * s[2] + k);
    if (!mask[o] && !outside[o]) outside[o] = 1, stack.push_back(int64_t(o));
  };
  for (int64_t i = 0; i < s[0]; ++i)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t k = 0; k < s[2]; ++k)
        if (i == 0 || j == 0 || k == 0 || i == s[0] - 1 || j == s[1] - 1 || k == s[2] - 1) seed(i, j, k);
  while (!stack.empty()) {
    const int64_t o = stack.back();
    stack.pop_back();
    const int64_t k = o % s[2], j = (o / s[2]) % s[1], i = o / (s[1] * s[2]);
    if (i > 0) seed(i - 1, j, k);
    if (i + 1 < s[0]) seed(i + 1, j, k);
    if (j > 0) seed(i, j - 1, k);
    if (j + 1 < s[1]) seed(i, j + 1, k);
    if (k > 0) seed(i, j, k - 1);
    if (k + 1 < s[2]) seed(i, j, k + 1);
  }
  Box box{};
  for (std::size_t a = 0; a < 3; ++a) box[a] = {std::numeric_limits<int64_t>::max(), -1};
  bool any = false;
  std::size_t o = 0;
  for (int64_t i = 0; i < s[0]; ++i)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t k = 0; k < s[2]; ++k, ++o) {
        mask[o] = std::uint8_t(!outside[o]);
        if (!mask[o]) continue;
        any = true;
        const int64_t idx[3] = {i, j, k};
        for (std::size_t a = 0; a < 3; ++a)
          box[a] = {std::min(box[a][0], idx[a]), std::max(box[a][1], idx[a] + 1)};
      }
  if (!any)  // acvl_utils get_bbox_from_mask: the whole array when the mask is empty
    for (std::size_t a = 0; a < 3; ++a) box[a] = {0, s[a]};
  if (mask_out) *mask_out = std::move(mask);
  return box;
}

Array crop(const Array& a, const Box& b) {
  Array out({b[0][1] - b[0][0], b[1][1] - b[1][0], b[2][1] - b[2][0]});
  std::size_t o = 0;
  for (int64_t i = b[0][0]; i < b[0][1]; ++i)
    for (int64_t j = b[1][0]; j < b[1][1]; ++j)
      for (int64_t k = b[2][0]; k < b[2][1]; ++k) out.values[o++] = a.at(i, j, k);
  return out;
}

// ---- normalisation -------------------------------------------------------------------------------

void normalise(Array& a, const Normalisation& n, const std::uint8_t* inside) {
  auto& v = a.values;
  if (n.scheme == "CTNormalization") {
    const float lo = float(n.percentile_00_5), hi = float(n.percentile_99_5), mean = float(n.mean),
                sd = float(std::max(n.std, 1e-8));
    for (float& x : v) x = (std::clamp(x, lo, hi) - mean) / sd;
  } else if (n.scheme == "ZScoreNormalization") {
    const bool masked = n.use_mask_for_norm && inside;
    double sum = 0, count = 0;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!masked || inside[i]) sum += v[i], count += 1;
    const float mean = float(sum / std::max(1.0, count));
    double ss = 0;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!masked || inside[i]) ss += double(v[i] - mean) * double(v[i] - mean);
    const float sd = std::max(float(std::sqrt(ss / std::max(1.0, count))), 1e-8f);
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!masked || inside[i]) v[i] = (v[i] - mean) / sd;
  } else if (n.scheme == "RescaleTo01Normalization") {
    const float lo = *std::min_element(v.begin(), v.end());
    for (float& x : v) x -= lo;
    const float hi = std::max(*std::max_element(v.begin(), v.end()), 1e-8f);
    for (float& x : v) x /= hi;
  } else if (n.scheme == "RGBTo01Normalization") {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    if (*lo < 0 || *hi > 255)
      throw SegmentationError(fmt::format("RGBTo01Normalization needs values in [0, 255], the image has [{}, {}]", *lo, *hi));
    for (float& x : v) x /= 255.0f;
  } else if (n.scheme != "NoNormalization") {
    throw SegmentationError(fmt::format("nnU-Net normalisation '{}' is not supported", n.scheme));
  }
}

// ---- the way in ----------------------------------------------------------------------------------

Preprocessed preprocess(const Plan& plan, const std::vector<Image::Pointer>& images) {
  if (int(images.size()) != plan.input_channels())
    throw SegmentationError(fmt::format("the nnU-Net model '{}' expects {} channel(s), {} given", plan.dataset_name,
                                        plan.input_channels(), images.size()));
  Preprocessed out;
  Properties& p = out.properties;
  const Image& first = *images[0];
  p.origin = first.GetOrigin();
  p.spacing = first.GetSpacing();
  p.direction = first.GetDirection();
  p.size = first.GetLargestPossibleRegion().GetSize();
  p.index = first.GetLargestPossibleRegion().GetIndex();
  p.axes = reader_axes(plan.reader, first);
  std::vector<Array> data;
  for (const auto& image : images) {
    if (image->GetLargestPossibleRegion().GetSize() != p.size)
      throw SegmentationError("the nnU-Net input channels have different sizes");
    data.push_back(transpose(to_array(*image, p.axes, &p.reader_spacing), plan.transpose_forward));
  }
  for (std::size_t a = 0; a < 3; ++a) p.original_spacing[a] = p.reader_spacing[std::size_t(plan.transpose_forward[a])];
  p.shape_before_cropping = data[0].shape;
  std::vector<std::uint8_t> mask;
  p.bbox = nonzero_box(data, &mask);
  Array inside_full(data[0].shape);
  for (std::size_t i = 0; i < mask.size(); ++i) inside_full.values[i] = mask[i];
  const Array inside_f = crop(inside_full, p.bbox);
  std::vector<std::uint8_t> inside(inside_f.values.size());
  for (std::size_t i = 0; i < inside.size(); ++i) inside[i] = std::uint8_t(inside_f.values[i] != 0);
  for (Array& c : data) c = crop(c, p.bbox);
  p.shape_after_cropping = data[0].shape;
  if (plan.spacing.size() == 2)
    p.target_spacing = {p.original_spacing[0], plan.spacing[0], plan.spacing[1]};
  else
    p.target_spacing = {plan.spacing.at(0), plan.spacing.at(1), plan.spacing.at(2)};
  p.new_shape = compute_new_shape(p.shape_after_cropping, p.original_spacing, p.target_spacing);
  for (std::size_t c = 0; c < data.size(); ++c) normalise(data[c], plan.normalisation.at(c), inside.data());
  out.channels = resample_to_shape(data, p.new_shape, p.original_spacing, p.target_spacing, plan.resample_data);
  return out;
}

// ---- the way back --------------------------------------------------------------------------------

Exported export_prediction(const Plan& plan, const Properties& p, const std::vector<Array>& logits,
                           bool probabilities) {
  const int heads = plan.heads();
  if (int(logits.size()) != heads)
    throw SegmentationError(fmt::format("the nnU-Net network returned {} channels, the dataset has {} heads",
                                        logits.size(), heads));
  for (const Array& l : logits)
    if (l.shape != p.new_shape) throw SegmentationError("nnU-Net logits are not on the preprocessed grid");
  // The predictor's logits are float16 and resample_data_or_seg keeps that dtype.
  std::vector<Array> prob = resample_to_shape(logits, p.shape_after_cropping, p.target_spacing, p.original_spacing,
                                              plan.resample_probabilities, /*half=*/true);
  // apply_inference_nonlin (float32), then convert_probabilities_to_segmentation
  const std::size_t n = prob[0].values.size();
  Array seg(p.shape_after_cropping);
  const std::vector<int> labels = plan.all_labels();
  std::vector<float> v(static_cast<std::size_t>(heads));
  for (std::size_t i = 0; i < n; ++i) {
    for (int h = 0; h < heads; ++h) v[std::size_t(h)] = prob[std::size_t(h)].values[i];
    int label = 0;
    if (plan.has_regions) {
      for (int h = 0; h < heads; ++h) {
        v[std::size_t(h)] = 1.0f / (1.0f + std::exp(-v[std::size_t(h)]));
        if (v[std::size_t(h)] > 0.5f) label = plan.regions_class_order[std::size_t(h)];
      }
    } else {
      const float m = *std::max_element(v.begin(), v.end());
      float sum = 0;
      for (float& x : v) sum += (x = std::exp(x - m));
      int best = 0;
      for (int h = 0; h < heads; ++h) {
        v[std::size_t(h)] /= sum;
        if (v[std::size_t(h)] > v[std::size_t(best)]) best = h;
      }
      label = labels[std::size_t(best)];
    }
    seg.values[i] = float(label);
    if (probabilities)
      for (int h = 0; h < heads; ++h) prob[std::size_t(h)].values[i] = v[std::size_t(h)];
  }
  // insert_crop_into_image, transpose_backward, the reader's axes undone
  const auto back = [&](const Array& cropped) {
    Array full(p.shape_before_cropping, 0.0f);
    std::size_t o = 0;
    for (int64_t i = p.bbox[0][0]; i < p.bbox[0][1]; ++i)
      for (int64_t j = p.bbox[1][0]; j < p.bbox[1][1]; ++j)
        for (int64_t k = p.bbox[2][0]; k < p.bbox[2][1]; ++k) full.at(i, j, k) = cropped.values[o++];
    return transpose(full, plan.transpose_backward);
  };
  Exported out;
  const Array labels_array = back(seg);
  if (array_shape(p.size, p.axes) != labels_array.shape)
    throw SegmentationError("nnU-Net export: the transposes do not bring the array back to the source shape");
  out.labels = empty_like<LabelImage>(p);
  auto* lb = out.labels->GetBufferPointer();
  walk(p.size, p.axes, [&](int64_t i, int64_t o) { lb[o] = LabelImage::PixelType(labels_array.values[std::size_t(i)]); });
  if (probabilities) {
    for (Array& h : prob) {
      const Array a = back(h);
      auto img = empty_like<Image>(p);
      float* b = img->GetBufferPointer();
      walk(p.size, p.axes, [&](int64_t i, int64_t o) { b[o] = a.values[std::size_t(i)]; });
      out.probabilities.push_back(img);
    }
    out.cropped_probabilities = std::move(prob);
  }
  return out;
}

}  // namespace sagitta::segmentation::nnunet
