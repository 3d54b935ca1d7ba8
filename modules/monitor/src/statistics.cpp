// Drift statistics: PSI over the reference's deciles and the two-sample Kolmogorov-Smirnov test
// with the p-value of scipy.stats.ks_2samp(method='asymp') (declarations: statistics.h).
#include "sagitta/monitor/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace sagitta::monitor {

namespace {

// numpy's linear interpolation between order statistics (its _lerp, exactly).
double lerp(double a, double b, double t) {
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

double quantile_sorted(const std::vector<double>& v, double q) {
  const double index = q * double(v.size() - 1);
  const std::size_t lo = std::size_t(std::floor(index));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return lerp(v[lo], v[hi], index - double(lo));
}

// ---- Marsaglia, Tsang & Wang (2003): P(D_n < d) as an entry of the n-th power of an m x m
// matrix, with powers of ten carried separately so that nothing under- or overflows.
using Matrix = std::vector<double>;

Matrix multiply(const Matrix& a, const Matrix& b, int m) {
  Matrix c(std::size_t(m) * m, 0.0);
  for (int i = 0; i < m; ++i)
    for (int k = 0; k < m; ++k) {
      const double aik = a[std::size_t(i) * m + k];
      if (aik == 0) continue;
      for (int j = 0; j < m; ++j) c[std::size_t(i) * m + j] += aik * b[std::size_t(k) * m + j];
    }
  return c;
}

void power(const Matrix& a, long n, int m, Matrix& v, int& exponent) {
  if (n == 1) {
    v = a;
    exponent = 0;
    return;
  }
  power(a, n / 2, m, v, exponent);
  Matrix b = multiply(v, v, m);
  int eb = 2 * exponent;
  if (n % 2 == 1) {
    v = multiply(a, b, m);
    exponent = eb;
  } else {
    v = std::move(b);
    exponent = eb;
  }
  const std::size_t centre = std::size_t(m / 2) * m + m / 2;
  if (v[centre] > 1e140) {
    for (double& x : v) x *= 1e-140;
    exponent += 140;
  }
}

double kolmogorov_cdf_mtw(long n, double d) {
  const double nd = double(n) * d;
  const int k = int(nd) + 1;
  const int m = 2 * k - 1;
  const double h = k - nd;
  Matrix hm(std::size_t(m) * m);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) hm[std::size_t(i) * m + j] = (i - j + 1 < 0) ? 0.0 : 1.0;
  for (int i = 0; i < m; ++i) {
    hm[std::size_t(i) * m] -= std::pow(h, i + 1);
    hm[std::size_t(m - 1) * m + i] -= std::pow(h, m - i);
  }
  if (2 * h - 1 > 0) hm[std::size_t(m - 1) * m] += std::pow(2 * h - 1, m);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j)
      for (int g = 1; g <= i - j + 1; ++g) hm[std::size_t(i) * m + j] /= g;
  Matrix q;
  int exponent = 0;
  power(hm, n, m, q, exponent);
  double s = q[std::size_t(k - 1) * m + (k - 1)];
  for (long i = 1; i <= n; ++i) {  // times n! / n^n
    s = s * double(i) / double(n);
    if (s < 1e-140) {
      s *= 1e140;
      exponent -= 140;
    }
  }
  return std::clamp(s * std::pow(10.0, exponent), 0.0, 1.0);
}

double log_factorial_over_power(long n) {  // ln(n! / n^n)
  return std::lgamma(double(n) + 1) - double(n) * std::log(double(n));
}

// Largest matrix the exact method builds (2k - 1 rows); beyond it the limit is used.
constexpr int kMaxMatrix = 301;

}  // namespace

double mean(const std::vector<double>& values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  return std::accumulate(values.begin(), values.end(), 0.0) / double(values.size());
}

std::vector<double> decile_edges(std::vector<double> reference) {
  std::vector<double> edges;
  if (reference.empty()) return edges;
  std::sort(reference.begin(), reference.end());
  for (int k = 1; k <= 9; ++k) edges.push_back(quantile_sorted(reference, k / 10.0));
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  return edges;
}

std::vector<double> bin_shares(const std::vector<double>& values, const std::vector<double>& edges) {
  std::vector<double> shares(edges.size() + 1, 0.0);
  if (values.empty()) return shares;
  for (double v : values) shares[std::size_t(std::lower_bound(edges.begin(), edges.end(), v) - edges.begin())] += 1;
  for (double& s : shares) s /= double(values.size());
  return shares;
}

double population_stability_index(const std::vector<double>& reference, const std::vector<double>& current, double epsilon) {
  if (reference.empty() || current.empty()) return 0;
  const std::vector<double> edges = decile_edges(reference);
  const std::vector<double> r = bin_shares(reference, edges), c = bin_shares(current, edges);
  double psi = 0;
  for (std::size_t k = 0; k < r.size(); ++k) {
    const double rk = std::max(r[k], epsilon), ck = std::max(c[k], epsilon);
    psi += (ck - rk) * std::log(ck / rk);
  }
  return psi;
}

double kolmogorov_limit_sf(double x) {
  if (x <= 0) return 1;
  if (x < 0.2) return 1;  // the alternating series converges slowly here; the value is 1 - 1e-11
  double sum = 0;
  for (int k = 1; k <= 100; ++k) {
    const double term = std::exp(-2.0 * k * k * x * x);
    sum += (k % 2 ? term : -term);
    if (term < 1e-18) break;
  }
  return std::clamp(2 * sum, 0.0, 1.0);
}

double smirnov_sf(long n, double d) {
  if (d <= 0) return 1;
  if (d >= 1) return 0;
  const double nn = double(n);
  const long last = long(std::floor(nn * (1 - d)));
  double sum = 0;
  for (long j = 0; j <= last; ++j) {
    const double a = 1 - d - double(j) / nn, b = d + double(j) / nn;
    if (a <= 0) {
      if (n - j == 0) sum += std::exp(std::lgamma(nn + 1) - std::lgamma(double(j) + 1) - std::lgamma(nn - double(j) + 1) +
                                      double(j - 1) * std::log(b));
      continue;
    }
    const double log_term = std::lgamma(nn + 1) - std::lgamma(double(j) + 1) - std::lgamma(nn - double(j) + 1) +
                            double(n - j) * std::log(a) + double(j - 1) * std::log(b);
    sum += std::exp(log_term);
  }
  return std::clamp(d * sum, 0.0, 1.0);
}

double kolmogorov_sf(long n, double d) {
  if (n <= 0 || std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
  if (d >= 1) return 0;
  if (d <= 0) return 1;
  const double nn = double(n), t = nn * d;
  if (t <= 1) {  // Ruben & Gambino: P(D_n < d) = n!/n^n (2t - 1)^n for 1/(2n) <= d <= 1/n
    if (t <= 0.5) return 1;
    return std::clamp(1 - std::exp(log_factorial_over_power(n) + nn * std::log(2 * t - 1)), 0.0, 1.0);
  }
  if (t >= nn - 1) return std::clamp(2 * std::pow(1 - d, nn), 0.0, 1.0);
  if (d >= 0.5) return std::clamp(2 * smirnov_sf(n, d), 0.0, 1.0);  // the two tails cannot both occur
  const double nd2 = t * d;
  if (nd2 >= 370) return 0;
  if ((n <= 140 && nd2 > 4) || (n > 140 && nd2 >= 2.2)) return std::clamp(2 * smirnov_sf(n, d), 0.0, 1.0);
  if (2 * (int(t) + 1) - 1 > kMaxMatrix) return kolmogorov_limit_sf(std::sqrt(nn) * d);
  return std::clamp(1 - kolmogorov_cdf_mtw(n, d), 0.0, 1.0);
}

KsResult ks_two_sample(std::vector<double> a, std::vector<double> b) {
  KsResult r;
  if (a.empty() || b.empty()) return r;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const double n1 = double(a.size()), n2 = double(b.size());
  auto at = [&](double v) {  // |F_a(v) - F_b(v)|, both right-continuous
    const double fa = double(std::upper_bound(a.begin(), a.end(), v) - a.begin()) / n1;
    const double fb = double(std::upper_bound(b.begin(), b.end(), v) - b.begin()) / n2;
    return std::abs(fa - fb);
  };
  for (double v : a) r.statistic = std::max(r.statistic, at(v));
  for (double v : b) r.statistic = std::max(r.statistic, at(v));
  const double big = std::max(n1, n2), small = std::min(n1, n2);
  const double en = big * small / (big + small);
  r.p_value = kolmogorov_sf(long(std::nearbyint(en)), r.statistic);
  return r;
}

}  // namespace sagitta::monitor
