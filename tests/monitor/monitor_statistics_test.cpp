// The monitor's drift statistics against a peer: the two-sample Kolmogorov-Smirnov statistic and
// p-value against scipy.stats.ks_2samp(method='asymp'), the one-sample Kolmogorov survival
// function against scipy.stats.kstwo.sf, and the PSI against a numpy computation
// (monitor_peer.py, Debian's python3-scipy; the test skips without it).
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <random>

#include "sagitta/monitor/statistics.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace mon = sagitta::monitor;
using nlohmann::json;
using sagitta::testing::run_command;
using sagitta::testing::shell_quote;

struct Pair {
  std::string what;
  std::vector<double> reference, current;
};

// Samples of the shapes cohorts have: normal volumes (mL), skewed confidences, values with ties
// (spacings, 0/1 flags), shifted and scaled ones, small and large cohorts.
std::vector<Pair> samples() {
  std::mt19937 rng(20261129);
  auto normal = [&](std::size_t n, double mu, double sigma) {
    std::normal_distribution<double> d(mu, sigma);
    std::vector<double> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  };
  auto beta_like = [&](std::size_t n, double a) {  // confidences near 1
    std::gamma_distribution<double> g1(a, 1.0), g2(1.5, 1.0);
    std::vector<double> v(n);
    for (auto& x : v) {
      const double p = g1(rng), q = g2(rng);
      x = p / (p + q);
    }
    return v;
  };
  auto ties = [&](std::size_t n, std::vector<double> levels) {
    std::uniform_int_distribution<std::size_t> pick(0, levels.size() - 1);
    std::vector<double> v(n);
    for (auto& x : v) x = levels[pick(rng)];
    return v;
  };
  std::vector<Pair> p;
  p.push_back({"3 vs 3, shifted", normal(3, 1500, 150), normal(3, 1800, 150)});
  p.push_back({"5 vs 7, same", normal(5, 1500, 150), normal(7, 1500, 150)});
  p.push_back({"8 vs 8, shifted", normal(8, 200, 30), normal(8, 260, 30)});
  p.push_back({"20 vs 30, same", normal(20, 1500, 150), normal(30, 1500, 150)});
  p.push_back({"25 vs 25, scaled", normal(25, 40, 10), normal(25, 40, 20)});
  p.push_back({"60 vs 40, confidences", beta_like(60, 20), beta_like(40, 8)});
  p.push_back({"100 vs 90, small shift", normal(100, 0, 1), normal(90, 0.3, 1)});
  p.push_back({"150 vs 200, ties", ties(150, {0.7, 0.8, 1.0, 1.25, 2.5}), ties(200, {0.7, 0.8, 1.0, 1.25, 2.5, 5.0})});
  p.push_back({"300 vs 250, same", normal(300, 10, 2), normal(250, 10, 2)});
  p.push_back({"400 vs 600, slight shift", normal(400, 10, 2), normal(600, 10.25, 2)});
  p.push_back({"1000 vs 800, shifted", normal(1000, 0, 1), normal(800, 0.5, 1)});
  p.push_back({"2000 vs 1500, same", normal(2000, 0, 1), normal(1500, 0, 1)});
  p.push_back({"0/1 flags 40 vs 50", ties(40, {0, 0, 0, 1}), ties(50, {0, 1})});
  p.push_back({"constant reference", std::vector<double>(12, 0.8), normal(10, 0.8, 0.05)});
  return p;
}

json run_peer(const json& request, const fs::path& dir) {
  const fs::path in = dir / "request.json";
  std::ofstream(in) << request.dump();
  const auto r = run_command("/usr/bin/python3 " + shell_quote(sagitta::testing::source_dir() / "tests/monitor/monitor_peer.py") +
                             " " + shell_quote(in));
  if (r.exit_code == 77 || r.exit_code == 127) return json();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

TEST(MonitorStatistics, KsAndPsiEqualScipyAndNumpy) {
  const auto pairs = samples();
  json request = {{"pairs", json::array()}};
  for (const auto& p : pairs) request["pairs"].push_back({{"reference", p.reference}, {"current", p.current}});
  const json peer = run_peer(request, sagitta::testing::scratch_dir());
  if (peer.is_null()) GTEST_SKIP() << "python3-scipy/python3-numpy not installed at /usr/bin/python3";
  double worst_p = 0, worst_psi = 0;
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    const auto& p = pairs[k];
    const json& want = peer["pairs"][k];
    const mon::KsResult ks = mon::ks_two_sample(p.reference, p.current);
    const double psi = mon::population_stability_index(p.reference, p.current);
    EXPECT_NEAR(ks.statistic, want["ks_d"].get<double>(), 1e-12) << p.what;
    // scipy uses Pelz-Good's expansion (an approximation) where n1 n2 / (n1 + n2) > 140 and D is
    // mid-range; this library computes the exact value there.
    const double en = double(p.reference.size()) * double(p.current.size()) / double(p.reference.size() + p.current.size());
    EXPECT_NEAR(ks.p_value, want["ks_p"].get<double>(), en > 140.5 ? 5e-6 : 1e-9) << p.what;
    EXPECT_NEAR(psi, want["psi"].get<double>(), 1e-9) << p.what;
    worst_p = std::max(worst_p, std::abs(ks.p_value - want["ks_p"].get<double>()));
    worst_psi = std::max(worst_psi, std::abs(psi - want["psi"].get<double>()));
    std::cout << fmt::format("{:<26} D {:.4f} (scipy {:.4f})  p {:.6g} (scipy {:.6g})  PSI {:.5f} (numpy {:.5f})\n", p.what,
                             ks.statistic, want["ks_d"].get<double>(), ks.p_value, want["ks_p"].get<double>(), psi,
                             want["psi"].get<double>());
  }
  std::cout << fmt::format("scipy {}: largest |p - scipy| {:.3g}, largest |PSI - numpy| {:.3g}\n",
                           peer["scipy"].get<std::string>(), worst_p, worst_psi);
}

// Every branch of the one-sample distribution (Ruben-Gambino ends, the exact matrix, twice the
// one-sided tail, large n) against scipy.stats.kstwo.sf.
TEST(MonitorStatistics, KolmogorovSurvivalEqualsScipyKstwo) {
  std::vector<std::pair<long, double>> grid;
  for (long n : {1L, 2L, 3L, 5L, 8L, 13L, 25L, 50L, 100L, 140L, 141L, 300L, 1000L, 5000L})
    for (double d : {0.01, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.45, 0.5, 0.6, 0.8, 0.95, 0.999})
      grid.push_back({n, d});
  json request = {{"kstwo", json::array()}};
  for (const auto& [n, d] : grid) request["kstwo"].push_back({n, d});
  const json peer = run_peer(request, sagitta::testing::scratch_dir());
  if (peer.is_null()) GTEST_SKIP() << "python3-scipy not installed at /usr/bin/python3";
  double worst = 0;
  for (std::size_t k = 0; k < grid.size(); ++k) {
    const double want = peer["kstwo"][k].get<double>(), got = mon::kolmogorov_sf(grid[k].first, grid[k].second);
    // scipy's own method for n > 140 in the middle range is Pelz-Good's expansion, an approximation
    // of the exact value computed here.
    const double tolerance = grid[k].first > 140 ? 5e-6 : 1e-9;
    EXPECT_NEAR(got, want, tolerance) << "n " << grid[k].first << " d " << grid[k].second;
    worst = std::max(worst, std::abs(got - want));
  }
  std::cout << fmt::format("{} points: largest |sf - scipy.stats.kstwo.sf| {:.3g}\n", grid.size(), worst);
}

TEST(MonitorStatistics, IdenticalSamplesShowNoDrift) {
  const std::vector<double> v = {1510.2, 1498.0, 1602.5, 1455.1, 1533.3, 1580.9};
  EXPECT_DOUBLE_EQ(mon::population_stability_index(v, v), 0.0);
  const auto ks = mon::ks_two_sample(v, v);
  EXPECT_DOUBLE_EQ(ks.statistic, 0.0);
  EXPECT_DOUBLE_EQ(ks.p_value, 1.0);
}

}  // namespace
