// Forward passes of a native nnU-Net network (bench/nnunet_forward.sh compares them with
// python3-torch's forward of the same network on the same input in the same run).
//   nnunet_forward_bench ARCHITECTURE.json CHECKPOINT.pth IN_CHANNELS CLASSES THREADS REPEATS SIZE...
// Prints JSON: load time, the first (warm-up) forward and the median of the timed ones.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "model_impl.h"
#include "nnunet_networks.h"
#include "torch_checkpoint.h"

namespace seg = sagitta::segmentation;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int main(int argc, char** argv) {
  if (argc < 9) {
    std::cerr << "usage: nnunet_forward_bench ARCH.json CHECKPOINT.pth IN_CHANNELS CLASSES THREADS REPEATS SIZE...\n";
    return 2;
  }
  try {
    seg::set_threads(std::stoi(argv[5]));
    const int repeats = std::stoi(argv[6]);
    std::vector<int64_t> shape = {1, std::stoi(argv[3])};
    for (int i = 7; i < argc; ++i) shape.push_back(std::stoll(argv[i]));
    auto t0 = Clock::now();
    const auto arch = seg::NNUNetArchitecture::from_json(nlohmann::json::parse(std::ifstream(argv[1])),
                                                         std::stoi(argv[3]), std::stoi(argv[4]));
    seg::NNUNetNetwork net(arch);
    net->load_state_dict(seg::read_nnunet_checkpoint(argv[2]).network_weights, argv[2]);
    net->eval();
    const double load = since(t0);
    c10::InferenceMode guard;
    torch::manual_seed(0);
    const auto x = torch::randn(shape);
    t0 = Clock::now();
    auto y = net->forward(x);
    const double first = since(t0);
    std::vector<double> times;
    for (int r = 0; r < repeats; ++r) {
      t0 = Clock::now();
      y = net->forward(x);
      times.push_back(since(t0));
    }
    std::sort(times.begin(), times.end());
    std::printf("{\"load_s\": %.4f, \"first_s\": %.4f, \"median_s\": %.4f, \"checksum\": %.6g}\n", load, first,
                times.empty() ? first : times[times.size() / 2], y.abs().mean().item<double>());
  } catch (const std::exception& e) {
    std::cerr << "nnunet_forward_bench: " << e.what() << "\n";
    return 1;
  }
}
