#pragma once
// Drift statistics of one quantity between a reference sample and a current one: the population
// stability index over the reference's deciles and the two-sample Kolmogorov-Smirnov test. Plain
// functions on vectors of finite numbers; docs/monitor.md states the conventions.
#include <cstddef>
#include <vector>

namespace sagitta::monitor {

// Empty bins get this share instead of 0 (the logarithm needs it); shares are not renormalised.
constexpr double kPsiEpsilon = 1e-4;

// The bin edges of the PSI: the reference's 10%, 20%, ..., 90% quantiles (linear interpolation
// between order statistics, numpy.quantile's default), duplicates removed. Bin k holds the values
// v with edge[k-1] < v <= edge[k]; the first and last bins are open.
std::vector<double> decile_edges(std::vector<double> reference);

// Share of `values` in each bin of `edges` (edges.size() + 1 bins).
std::vector<double> bin_shares(const std::vector<double>& values, const std::vector<double>& edges);

// PSI = sum over bins of (current - reference) * ln(current / reference), shares floored at
// `epsilon`. 0 when either sample is empty.
double population_stability_index(const std::vector<double>& reference, const std::vector<double>& current,
                                   double epsilon = kPsiEpsilon);

struct KsResult {
  double statistic = 0;  // D = sup |F_reference - F_current| over the pooled values
  double p_value = 1;    // two-sided, asymptotic (see ks_two_sample)
};

// Two-sample KS. The p-value is scipy.stats.ks_2samp's method='asymp' (scipy 1.10): the
// two-sided one-sample Kolmogorov distribution's survival function at D with
// n = round(n1 * n2 / (n1 + n2)), i.e. kolmogorov_sf(round(en), D). Either sample empty: D 0, p 1.
KsResult ks_two_sample(std::vector<double> a, std::vector<double> b);

// P(D_n >= d) for the two-sided one-sample Kolmogorov statistic with n observations: exact
// (Marsaglia-Tsang-Wang's matrix method; Ruben-Gambino's closed forms near the ends; twice the
// exact one-sided Smirnov tail, Birnbaum-Tingey, where n d^2 is large enough that the two tails
// do not overlap measurably), and Kolmogorov's limiting distribution where the matrix would pass
// 301 rows (n D >= 150: thousands of studies per side).
double kolmogorov_sf(long n, double d);

// The limit: P(K >= x) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 x^2).
double kolmogorov_limit_sf(double x);

// Exact one-sided Smirnov tail P(D+_n >= d) (Birnbaum-Tingey sum).
double smirnov_sf(long n, double d);

double mean(const std::vector<double>& values);  // NaN when empty

}  // namespace sagitta::monitor
