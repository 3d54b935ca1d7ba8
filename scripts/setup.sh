#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for Sagitta and builds it; safe to run again.
#
#   scripts/setup.sh demo   install, build, run `sagitta demo` on the shipped demo data
#   scripts/setup.sh test   install, build, run the default test labels (unit, integration, render),
#                           then the sanitizer step: the DICOM library and its tests with ASan+UBSan
#                           (clang-14), their tests, and a short smoke run of every fuzzer
#   scripts/setup.sh build  install and build only
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (RelWithDebInfo), JOBS (2),
# SAGITTA_EXTERNAL_DATA (default ../shared/data; tests needing it skip when it is absent),
# CTEST_ARGS (extra ctest arguments, e.g. "-L slow"), SANITIZE_BUILD_DIR (build-sanitize),
# SANITIZE=0 skips the sanitizer step, FUZZ_SMOKE_SECONDS (20 per fuzzer).
set -euo pipefail

mode="${1:-build}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
jobs="${JOBS:-2}"

packages=(
  g++ cmake ninja-build ccache pkg-config make
  libinsighttoolkit5-dev libvtk9-dev libdcmtk-dev libtorch-dev
  libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev libyaml-cpp-dev
  libopenjp2-7-dev libopenslide-dev libtiff-dev libopenblas0-openmp libcurl4-openssl-dev
  xvfb xauth libgl1-mesa-dri
  dcmtk libgdcm-tools dcm2niix dicom3tools python3-pydicom python3-shapely time orthanc orthanc-dicomweb openssl curl
  python3-torch python3-numpy python3-scipy python3-skimage python3-nibabel python3-yaml
  openslide-tools python3-openslide
  chromium python3-pil
  clang-14 libclang-rt-14-dev zlib1g-dev
)
# Not installed by default: slurm-wlm, for the `cluster` tests (a one-node Slurm on this machine):
#   apt-get install --no-install-recommends slurm-wlm; ctest --test-dir build -L cluster --output-on-failure

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#packages[@]} Debian packages present"
    return
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  local external="${SAGITTA_EXTERNAL_DATA:-$root/../shared/data}"
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/sagitta-ccache}"
  # Paths relative to the checkout: a second clone (CI on a fresh clone) reuses the cache.
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}"
  # Debug info names the build folder; without this a second clone would miss the cache.
  export CCACHE_NOHASHDIR=1
  cmake -S "$root" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
    -DSAGITTA_EXTERNAL_DATA="$external" >/dev/null
  cmake --build "$build_dir" -j "$jobs"
}

# The torch-free DICOM library, its floor and their tests with AddressSanitizer and
# UndefinedBehaviorSanitizer, built by clang-14 with libFuzzer coverage, plus one fuzzer per harness
# (tests/fuzz, docs/fuzzing.md). Small on purpose: no LibTorch, VTK or commands.
sanitize() {
  local dir="${SANITIZE_BUILD_DIR:-$root/build-sanitize}"
  local external="${SAGITTA_EXTERNAL_DATA:-$root/../shared/data}"
  local t0=$SECONDS
  # -O1 and line tables only: what ASan recommends, and a third faster to compile than -O2 -g.
  CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DSAGITTA_DICOM_ONLY=ON -DSAGITTA_SANITIZE=ON -DSAGITTA_FUZZ=ON -DSAGITTA_BUILD_BENCHMARKS=OFF \
    -DSAGITTA_FUZZ_SMOKE_SECONDS="${FUZZ_SMOKE_SECONDS:-20}" -DSAGITTA_EXTERNAL_DATA="$external" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "setup: sanitizer build took $((SECONDS - t0)) s"
  t0=$SECONDS
  # Leaks are errors (LeakSanitizer is on by default with ASan); UBSan findings are fatal.
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    ctest --test-dir "$dir" -L "unit|integration|fuzz_smoke" --output-on-failure -j "$jobs"
  echo "setup: sanitizer tests and fuzz smoke took $((SECONDS - t0)) s"
}

install_packages
build
case "$mode" in
  build) ;;
  demo)
    # The overview picture and the report page's pictures need an X server (Debian's VTK renders through X only).
    if [ -n "${DISPLAY:-}" ]; then
      "$build_dir/modules/sagitta" demo --output "$build_dir/demo-output"
    else
      xvfb-run -a "$build_dir/modules/sagitta" demo --output "$build_dir/demo-output"
    fi
    ;;
  test)
    # Rendering tests need an X server: Debian's VTK has no offscreen backend without X.
    # shellcheck disable=SC2086
    xvfb-run -a ctest --test-dir "$build_dir" -LE "slow|cluster" --output-on-failure -j "$jobs" ${CTEST_ARGS:-}
    if [ "${SANITIZE:-1}" != 0 ]; then sanitize; fi
    ;;
  *)
    echo "usage: $0 demo|test|build" >&2
    exit 2
    ;;
esac
