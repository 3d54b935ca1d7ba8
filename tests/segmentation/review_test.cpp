// The review of a study (issue 16): the confidence kernels and intensity summaries against numpy,
// and `sagitta calibrate` + `sagitta segment` on the real CT and MR of the shared data with the demo
// model — inputs that must be flagged (MR into a CT model, noise, a cut-off field of view, a
// spacing far outside the training range) and the real CT, whose input checks must pass.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <itkImageRegionIterator.h>

#include <cmath>
#include <fstream>
#include <random>

#include "sagitta/core/review_profile.h"
#include "sagitta/core/volume_io.h"
#include "scores.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;
namespace st = sagitta::testing;
using nlohmann::json;

namespace {

bool have_numpy() {
  static const bool ok = st::run_command("/usr/bin/python3 -c 'import numpy'").exit_code == 0;
  return ok;
}

// numpy's answer to a small program reading `values` (one per line) from stdin-like file `in`.
std::string numpy(const std::string& program, const fs::path& in) {
  const auto r = st::run_command(fmt::format("/usr/bin/python3 -c \"{}\" '{}'", program, in.string()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

}  // namespace

TEST(ReviewKernels, ConfidenceAndEntropyMatchNumpy) {
  if (!have_numpy()) GTEST_SKIP() << "python3-numpy not installed";
  std::mt19937 rng(7);
  std::normal_distribution<float> logit(0.0f, 3.0f);
  const std::size_t n = 500, k = 5;
  std::vector<std::vector<float>> planes(k, std::vector<float>(n));
  for (auto& p : planes)
    for (auto& v : p) v = logit(rng);
  for (std::size_t c = 0; c < k; ++c) planes[c][0] = 40.0f * float(c == 2);  // a certain voxel
  std::vector<const float*> ptr;
  for (const auto& p : planes) ptr.push_back(p.data());
  for (const bool sigmoid : {false, true}) {
    std::vector<float> top(n), entropy(n);
    sagitta::segmentation::detail::confidence_from_scores(ptr, n, sigmoid, top.data(), entropy.data());
    const fs::path file = st::scratch_dir() / "logits.txt";
    {
      std::ofstream f(file);
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t c = 0; c < k; ++c) f << fmt::format("{:.9g}", planes[c][i]) << (c + 1 < k ? ' ' : '\n');
    }
    const std::string program =
        sigmoid ? "import numpy as np,sys; l=np.loadtxt(sys.argv[1]); p=1/(1+np.exp(-l)); "
                  "h=-(np.where(p>0,p*np.log(np.where(p>0,p,1)),0)+np.where(p<1,(1-p)*np.log(np.where(p<1,1-p,1)),0)); "
                  "t=np.maximum(p,1-p).min(1); e=h.mean(1)/np.log(2); [print(repr(a),repr(b)) for a,b in zip(t,e)]"
                : "import numpy as np,sys; l=np.loadtxt(sys.argv[1]); e=np.exp(l-l.max(1,keepdims=True)); "
                  "p=e/e.sum(1,keepdims=True); h=-(p*np.log(np.where(p>0,p,1))).sum(1)/np.log(p.shape[1]); "
                  "[print(repr(a),repr(b)) for a,b in zip(p.max(1),h)]";
    std::istringstream out(numpy(program, file));
    for (std::size_t i = 0; i < n; ++i) {
      double t = 0, h = 0;
      ASSERT_TRUE(out >> t >> h) << "numpy gave fewer lines than voxels";
      EXPECT_NEAR(top[i], t, 2e-6) << "voxel " << i << (sigmoid ? " (sigmoid)" : "");
      EXPECT_NEAR(entropy[i], h, 2e-5) << "voxel " << i << (sigmoid ? " (sigmoid)" : "");
    }
    if (!sigmoid) {
      EXPECT_NEAR(top[0], 1.0, 1e-6);
      EXPECT_NEAR(entropy[0], 0.0, 1e-6);
    }
  }
}

TEST(ReviewKernels, IntensitySummaryMatchesNumpyPercentiles) {
  if (!have_numpy()) GTEST_SKIP() << "python3-numpy not installed";
  std::mt19937 rng(3);
  std::gamma_distribution<float> g(2.0f, 40.0f);
  std::vector<float> v(10007);
  for (auto& x : v) x = g(rng) - 100.0f;
  const fs::path file = st::scratch_dir() / "values.txt";
  {
    std::ofstream f(file);
    for (float x : v) f << fmt::format("{:.9g}\n", x);
  }
  auto copy = v;
  const sagitta::IntensitySummary s = sagitta::summarize(copy);
  std::istringstream out(numpy("import numpy as np,sys; v=np.loadtxt(sys.argv[1]).astype(np.float32).astype(np.float64); "
                               "print(v.mean(), v.std(), *np.percentile(v,[0.5,50,99.5]))",
                               file));
  double mean = 0, sd = 0, p0 = 0, p50 = 0, p99 = 0;
  ASSERT_TRUE(out >> mean >> sd >> p0 >> p50 >> p99);
  EXPECT_NEAR(s.mean, mean, 1e-6 * std::abs(mean) + 1e-6);
  EXPECT_NEAR(s.std, sd, 1e-6 * sd);
  EXPECT_NEAR(s.p00_5, p0, 1e-4);
  EXPECT_NEAR(s.median, p50, 1e-4);
  EXPECT_NEAR(s.p99_5, p99, 1e-4);
}
