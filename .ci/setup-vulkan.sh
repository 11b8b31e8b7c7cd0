#!/usr/bin/env bash
# Installs the software Vulkan driver (Mesa lavapipe) that the kernel tests and benchmarks run
# cubecl wgpu kernels on: these machines have no GPU. Idempotent; needs root (or sudo) and
# Debian/Ubuntu apt.
set -euo pipefail
if [ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] && ldconfig -p | grep -q libvulkan.so.1; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q mesa-vulkan-drivers libvulkan1 >/dev/null \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q mesa-vulkan-drivers libvulkan1 >/dev/null; }
test -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json || { echo "lavapipe not installed" >&2; exit 1; }
