// Sliding-window inference on a real volume against the sum of pure forward passes over the same
// windows (same batch sizes, same model, same threads). Prints one JSON object. Also writes the
// preprocessed volume (raw float32, x fastest) so the Python peer runs on the same input.
//   segmentation_bench CARD VOLUME THREADS [BATCH] [OVERLAP] [RAW_OUT]
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sys/resource.h>

#include "model_impl.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/segmentation/preprocess.h"
#include "sagitta/segmentation/sliding_window.h"

namespace seg = sagitta::segmentation;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
static double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: segmentation_bench CARD VOLUME THREADS [BATCH] [OVERLAP] [RAW_OUT]\n";
    return 2;
  }
  const auto card = sagitta::load_card(argv[1]);
  seg::ModelOptions mo;
  mo.threads = std::atoi(argv[3]);
  const int batch = argc > 4 ? std::atoi(argv[4]) : 1;
  const double overlap = argc > 5 ? std::atof(argv[5]) : 0.5;
  const auto model = seg::Model::load(card, mo);
  auto volume = sagitta::read_volume(argv[2]);
  auto pre = seg::preprocess({volume}, card);
  volume = nullptr;
  const auto size = pre.channels[0]->GetLargestPossibleRegion().GetSize();
  const std::size_t voxels = size[0] * size[1] * size[2];
  if (argc > 6) {
    std::ofstream raw(argv[6], std::ios::binary);
    raw.write(reinterpret_cast<const char*>(pre.channels[0]->GetBufferPointer()), std::streamsize(voxels * 4));
  }
  // One forward at the full patch and batch first: oneDNN creates its kernels for a shape on first
  // use, and neither side of the comparison should pay that. The peak RSS after it includes the
  // network's activations for one batch.
  const auto& p = card.patch_size;
  {
    c10::InferenceMode guard;
    model.impl().logits(torch::randn({batch, int64_t(card.channels.size()), p[2], p[1], p[0]}));
  }
  const double rss_before = peak_rss_mib();

  seg::SlidingWindowOptions so;
  so.batch_size = batch;
  so.overlap = overlap;
  const auto r = seg::sliding_window(model, pre.channels, so);
  const double rss_after = peak_rss_mib();

  // The same number of forward passes with the same batch sizes on one fixed input.
  c10::InferenceMode guard;
  double forward_sum = 0;
  int remaining = r.windows;
  while (remaining > 0) {
    const int b = std::min(batch, remaining);
    remaining -= b;
    auto x = torch::randn({b, int64_t(card.channels.size()), p[2], p[1], p[0]});
    const auto t = Clock::now();
    auto y = model.impl().logits(x);
    forward_sum += since(t);
  }
  double checksum = 0;
  for (const auto& l : r.logits) checksum += double(l->GetBufferPointer()[voxels / 2]);
  const double volume_mib = double(voxels) * 4 / 1048576.0;
  const double batch_mib = double(batch) * double(p[0] * p[1] * p[2]) * 4 * double(card.channels.size() + std::size_t(model.num_classes())) / 1048576.0;
  std::cout << nlohmann::json{{"threads", at::get_num_threads()},
                              {"batch", batch},
                              {"grid", {size[0], size[1], size[2]}},
                              {"windows", r.windows},
                              {"sliding_window_s", r.total_seconds},
                              {"forward_in_window_s", r.forward_seconds},
                              {"pure_forward_sum_s", forward_sum},
                              {"overhead_vs_pure_forward", r.total_seconds / forward_sum - 1},
                              {"overhead_outside_forward", r.total_seconds / r.forward_seconds - 1},
                              {"center_logit_sum", checksum},
                              {"volume_mib", volume_mib},
                              {"logit_buffers_mib", volume_mib * (model.num_classes() + 1)},
                              {"batch_io_mib", batch_mib},
                              {"peak_rss_before_mib", rss_before},
                              {"peak_rss_after_mib", rss_after}}
                   .dump()
            << std::endl;
  return 0;
}
