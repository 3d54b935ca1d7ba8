// Pixel-edge boundary tracing, even-odd polygon filling and ring grouping (see contours.h).
//
// Tracing: every side a labelled voxel shares with a voxel of another value is a directed edge
// between two voxel corners, oriented so that the voxel lies on its right (in index space, rows
// growing downwards). Every corner then has as many edges leaving as arriving, so following edges
// from any unused edge always closes a loop. Where two voxels of a label touch only diagonally a
// corner has two edges leaving: the walk turns right, which keeps the voxel it came along on the
// same loop (objects are 4-connected loops); a loop that still passes a corner twice is split there
// into simple rings. Whatever the grouping into loops, every boundary edge
// is in exactly one loop, so the even-odd parity at any voxel centre is that of the voxel itself.
#include "sagitta/core/contours.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace sagitta::contours {
namespace {

struct Edge {
  std::uint32_t from, to;
};

// A walk that passes a corner twice (a region pinched at a corner it shares diagonally) is split
// there into rings that each pass every corner once: simple rings, touching at that corner. The
// edges, and so the even-odd fill, stay the same.
std::vector<std::vector<std::uint32_t>> simple_rings(const std::vector<std::uint32_t>& corners) {
  std::vector<std::vector<std::uint32_t>> rings;
  std::vector<std::uint32_t> stack;
  std::unordered_map<std::uint32_t, std::size_t> position;
  for (const std::uint32_t c : corners) {
    const auto it = position.find(c);
    if (it == position.end()) {
      position[c] = stack.size();
      stack.push_back(c);
      continue;
    }
    const std::size_t p = it->second;
    rings.emplace_back(stack.begin() + static_cast<std::ptrdiff_t>(p), stack.end());
    for (std::size_t k = p + 1; k < stack.size(); ++k) position.erase(stack[k]);
    stack.resize(p + 1);
  }
  rings.push_back(std::move(stack));
  return rings;
}

// The ring's corners where the direction changes, as continuous indices.
Polygon corner_polygon(const std::vector<std::uint32_t>& corners, std::uint32_t w1) {
  Polygon p;
  const std::size_t n = corners.size();
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint32_t a = corners[(k + n - 1) % n], b = corners[k], c = corners[(k + 1) % n];
    const int d1x = static_cast<int>(b % w1) - static_cast<int>(a % w1), d1y = static_cast<int>(b / w1) - static_cast<int>(a / w1);
    const int d2x = static_cast<int>(c % w1) - static_cast<int>(b % w1), d2y = static_cast<int>(c / w1) - static_cast<int>(b / w1);
    if (d1x * d2y - d1y * d2x == 0 && d1x * d2x + d1y * d2y > 0) continue;
    p.push_back({static_cast<double>(b % w1) - 0.5, static_cast<double>(b / w1) - 0.5});
  }
  return p;
}

template <typename T>
std::map<std::uint16_t, std::vector<Polygon>> trace_values(const T* values, int columns, int rows) {
  const std::uint32_t w1 = static_cast<std::uint32_t>(columns) + 1;
  auto corner = [w1](int x, int y) { return static_cast<std::uint32_t>(y) * w1 + static_cast<std::uint32_t>(x); };
  std::map<std::uint16_t, std::vector<Edge>> edges;
  for (int j = 0; j < rows; ++j)
    for (int i = 0; i < columns; ++i) {
      const T v = values[static_cast<std::size_t>(j) * columns + i];
      if (v == 0) continue;
      auto other = [&](int ii, int jj) {
        return ii < 0 || jj < 0 || ii >= columns || jj >= rows || values[static_cast<std::size_t>(jj) * columns + ii] != v;
      };
      const bool top = other(i, j - 1), right = other(i + 1, j), bottom = other(i, j + 1), left = other(i - 1, j);
      if (!(top || right || bottom || left)) continue;
      auto& e = edges[static_cast<std::uint16_t>(v)];
      if (top) e.push_back({corner(i, j), corner(i + 1, j)});
      if (right) e.push_back({corner(i + 1, j), corner(i + 1, j + 1)});
      if (bottom) e.push_back({corner(i + 1, j + 1), corner(i, j + 1)});
      if (left) e.push_back({corner(i, j + 1), corner(i, j)});
    }

  std::map<std::uint16_t, std::vector<Polygon>> result;
  for (auto& [value, list] : edges) {
    std::sort(list.begin(), list.end(), [](const Edge& a, const Edge& b) { return a.from < b.from; });
    std::vector<bool> used(list.size(), false);
    auto direction = [w1](const Edge& e) {
      return std::pair<int, int>(static_cast<int>(e.to % w1) - static_cast<int>(e.from % w1),
                                 static_cast<int>(e.to / w1) - static_cast<int>(e.from / w1));
    };
    auto& loops = result[value];
    for (std::size_t start = 0; start < list.size(); ++start) {
      if (used[start]) continue;
      std::vector<std::uint32_t> corners;
      std::size_t current = start;
      used[current] = true;
      corners.push_back(list[current].from);
      while (list[current].to != list[start].from) {
        const std::uint32_t at = list[current].to;
        corners.push_back(at);
        auto range = std::equal_range(list.begin(), list.end(), Edge{at, 0},
                                      [](const Edge& a, const Edge& b) { return a.from < b.from; });
        std::size_t next = list.size();
        const auto [dx, dy] = direction(list[current]);
        for (auto it = range.first; it != range.second; ++it) {
          const std::size_t k = static_cast<std::size_t>(it - list.begin());
          if (used[k]) continue;
          if (next == list.size()) {
            next = k;
            continue;
          }
          const auto [ex, ey] = direction(list[k]);
          if (dx * ey - dy * ex > 0) next = k;  // two ways on: take the right turn
        }
        if (next == list.size()) break;  // cannot happen for balanced edges; guards a bad input
        used[next] = true;
        current = next;
      }
      for (auto& ring : simple_rings(corners)) {
        Polygon p = corner_polygon(ring, w1);
        if (p.size() >= 3) loops.push_back(std::move(p));
      }
    }
  }
  return result;
}

}  // namespace

std::map<std::uint16_t, std::vector<Polygon>> trace(const std::uint16_t* values, int columns, int rows) {
  return trace_values(values, columns, rows);
}

std::map<std::uint16_t, std::vector<Polygon>> trace(const std::uint8_t* values, int columns, int rows) {
  return trace_values(values, columns, rows);
}

void fill_even_odd(const std::vector<Polygon>& polygons, int columns, int rows, std::vector<std::uint8_t>& mask) {
  mask.resize(static_cast<std::size_t>(columns) * rows, 0);
  std::vector<std::vector<double>> crossings(static_cast<std::size_t>(rows));
  for (const auto& p : polygons) {
    const std::size_t n = p.size();
    for (std::size_t k = 0; k < n; ++k) {
      const Vertex a = p[k], b = p[(k + 1) % n];
      if (a.y == b.y) continue;
      // Rows j with centre y = j crossed by the edge, half-open: (min, max].
      const double lo = std::min(a.y, b.y), hi = std::max(a.y, b.y);
      const int j0 = std::max(0, static_cast<int>(std::floor(lo)) + 1), j1 = std::min(rows - 1, static_cast<int>(std::floor(hi)));
      for (int j = j0; j <= j1; ++j) {
        if (!(j > lo && j <= hi)) continue;
        crossings[static_cast<std::size_t>(j)].push_back(a.x + (j - a.y) * (b.x - a.x) / (b.y - a.y));
      }
    }
  }
  for (int j = 0; j < rows; ++j) {
    auto& x = crossings[static_cast<std::size_t>(j)];
    std::sort(x.begin(), x.end());
    for (std::size_t m = 0; m + 1 < x.size(); m += 2) {
      // Centres i with x[m] <= i < x[m+1] are inside.
      const int i0 = std::max(0, static_cast<int>(std::ceil(x[m])));
      const int i1 = std::min(columns, static_cast<int>(std::ceil(x[m + 1])));
      for (int i = i0; i < i1; ++i) mask[static_cast<std::size_t>(j) * columns + i] ^= 1;
    }
  }
}

double signed_area(const Polygon& p) {
  double twice = 0;
  for (std::size_t k = 0; k < p.size(); ++k) {
    const Vertex a = p[k], b = p[(k + 1) % p.size()];
    twice += a.x * b.y - b.x * a.y;
  }
  return twice / 2;
}

namespace {

// Even-odd point-in-polygon test (the point never lies on an edge here: it is the midpoint of a
// hole's edge, and loops of one value share no edges).
bool inside(const Vertex& q, const Polygon& p) {
  bool in = false;
  for (std::size_t k = 0, n = p.size(); k < n; ++k) {
    const Vertex a = p[k], b = p[(k + 1) % n];
    if ((a.y > q.y) != (b.y > q.y) && q.x < a.x + (q.y - a.y) * (b.x - a.x) / (b.y - a.y)) in = !in;
  }
  return in;
}

}  // namespace

std::vector<std::vector<Polygon>> polygons_with_holes(const std::vector<Polygon>& loops) {
  std::vector<std::size_t> outers;
  std::vector<double> area(loops.size());
  for (std::size_t i = 0; i < loops.size(); ++i) {
    area[i] = signed_area(loops[i]);
    if (area[i] > 0) outers.push_back(i);
  }
  std::vector<std::vector<Polygon>> out;
  std::map<std::size_t, std::size_t> entry_of_outer;
  for (const std::size_t o : outers) {
    entry_of_outer[o] = out.size();
    out.push_back({loops[o]});
  }
  for (std::size_t h = 0; h < loops.size(); ++h) {
    if (area[h] > 0 || loops[h].size() < 2) continue;
    // The smallest outer loop around the midpoint of the hole's first edge holds it.
    const Vertex q{(loops[h][0].x + loops[h][1].x) / 2, (loops[h][0].y + loops[h][1].y) / 2};
    std::size_t best = loops.size();
    for (const std::size_t o : outers)
      if ((best == loops.size() || area[o] < area[best]) && inside(q, loops[o])) best = o;
    if (best != loops.size()) out[entry_of_outer[best]].push_back(loops[h]);
  }
  return out;
}

}  // namespace sagitta::contours
