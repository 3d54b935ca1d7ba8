#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for Sagitta and builds it; safe to run again.
#
#   scripts/setup.sh demo   install, build, run `sagitta demo` on the shipped demo data
#   scripts/setup.sh test   install, build, run the default test labels (unit, integration, render)
#   scripts/setup.sh build  install and build only
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (RelWithDebInfo), JOBS (2),
# SAGITTA_EXTERNAL_DATA (default ../shared/data; tests needing it skip when it is absent),
# CTEST_ARGS (extra ctest arguments, e.g. "-L slow").
set -euo pipefail

mode="${1:-build}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
jobs="${JOBS:-2}"

packages=(
  g++ cmake ninja-build ccache pkg-config make
  libinsighttoolkit5-dev libvtk9-dev libdcmtk-dev libtorch-dev
  libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev
  libopenjp2-7-dev libopenslide-dev libtiff-dev libopenblas0-openmp
  xvfb xauth libgl1-mesa-dri
  dcmtk libgdcm-tools dcm2niix dicom3tools python3-pydicom time orthanc
  python3-torch
  openslide-tools python3-openslide
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

install_packages
build
case "$mode" in
  build) ;;
  demo)
    # The overview picture needs an X server (Debian's VTK renders through X only).
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
    ;;
  *)
    echo "usage: $0 demo|test|build" >&2
    exit 2
    ;;
esac
