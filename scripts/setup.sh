#!/usr/bin/env bash
# Installs what Lethe needs on a fresh Debian machine: the C libraries it links and the default
# data set. Swift packages are fetched by SwiftPM itself on the first build.
set -euo pipefail
packages=(libyaml-dev libopenblas-dev libxsmm-dev libpng-dev zlib1g-dev dataset-fashion-mnist pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: system packages present (${packages[*]})"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
