// Progress reporting and cancellation shared by every long-running command (the declarations and
// their contract: progress.h).
#include "progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <unistd.h>

namespace sagitta::cli {
namespace {

std::atomic<int> g_style{static_cast<int>(ProgressStyle::Auto)};
volatile std::sig_atomic_t g_cancel = 0;
std::atomic<bool> g_handlers{false};

extern "C" void on_cancel_signal(int) { g_cancel = 1; }

ProgressStyle resolve(bool quiet) {
  if (quiet) return ProgressStyle::None;
  const auto s = progress_style();
  if (s != ProgressStyle::Auto) return s;
  return ::isatty(STDOUT_FILENO) ? ProgressStyle::Terminal : ProgressStyle::None;
}

// Slicer copies these strings into XML elements.
std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

void set_progress_style(ProgressStyle style) { g_style = static_cast<int>(style); }
ProgressStyle progress_style() { return static_cast<ProgressStyle>(g_style.load()); }

void install_cancel_handlers() {
  if (g_handlers.exchange(true)) return;
  struct sigaction sa {};
  sa.sa_handler = on_cancel_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

bool cancel_requested() { return g_cancel != 0; }

Progress::Progress(std::string name, std::string comment, bool quiet)
    : name_(std::move(name)), style_(resolve(quiet)), start_(std::chrono::steady_clock::now()) {
  if (style_ == ProgressStyle::Slicer) {
    fmt::print("<filter-start>\n<filter-name>{}</filter-name>\n<filter-comment>{}</filter-comment>\n</filter-start>\n",
               xml_escape(name_), xml_escape(comment));
    std::fflush(stdout);
  }
}

Progress::~Progress() { finish(); }

void Progress::stage(const std::string& name, double from, double to) {
  stage_ = name;
  from_ = std::clamp(from, 0.0, 1.0);
  to_ = std::clamp(to, from_, 1.0);
  emit(from_, 0.0, true);
}

bool Progress::update(double f) {
  f = std::clamp(f, 0.0, 1.0);
  emit(from_ + (to_ - from_) * f, f, f >= 1.0);
  return !cancel_requested();
}

void Progress::emit(double overall, double stage_fraction, bool force) {
  if (style_ == ProgressStyle::None || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  // At most ~10 updates a second: Slicer parses every line, terminals redraw every one.
  if (!force && now - last_emit_ < std::chrono::milliseconds(100)) return;
  last_emit_ = now;
  if (style_ == ProgressStyle::Slicer) {
    fmt::print("<filter-progress>{:.4f}</filter-progress>\n<filter-stage-progress>{:.4f}</filter-stage-progress>\n",
               overall, stage_fraction);
  } else {
    const int width = 30, filled = int(overall * width + 0.5);
    fmt::print("\r\033[K{} [{}{}] {:3.0f}% {}", name_, std::string(std::size_t(filled), '#'),
               std::string(std::size_t(width - filled), '.'), overall * 100, stage_);
  }
  std::fflush(stdout);
}

void Progress::finish() {
  if (finished_) return;
  if (style_ == ProgressStyle::Slicer) {
    emit(1.0, 1.0, true);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    fmt::print("<filter-end>\n<filter-name>{}</filter-name>\n<filter-time>{:.2f}</filter-time>\n</filter-end>\n",
               xml_escape(name_), s);
    std::fflush(stdout);
  } else if (style_ == ProgressStyle::Terminal) {
    fmt::print("\r\033[K");
    std::fflush(stdout);
  }
  finished_ = true;
}

}  // namespace sagitta::cli
