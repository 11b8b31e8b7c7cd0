#!/usr/bin/env bash
# Supplies the LLVM that cubecl's build scripts would download from GitHub (tracel-llvm-bundler,
# pulled in by cubecl-cuda and cubecl-cpu), from PyPI instead: the static LLVM 23.1 of the
# mlc-llvm-static wheels (X86 + NVPTX targets), unpacked where the bundler looks, with the marker
# file that tells it the install is done. Idempotent; only needs python3 with pip.
set -euo pipefail

version="23.1.1.post0"
prefix="${XDG_DATA_HOME:-${HOME}/.local/share}/tracel/tracel-llvm-23.1.0-4"
marker="${prefix}/.tracel-llvm-installed"
if [[ -f "${marker}" && -x "${prefix}/bin/llvm-config" ]]; then
    exit 0
fi

wheels="${HOME}/.cache/mspipe-llvm/wheels"
mkdir -p "${wheels}"
python3 -m pip download --no-deps --quiet --dest "${wheels}" \
    "mlc-llvm-static==${version}" "mlc-llvm-static-extra-targets==${version}"

staging="$(mktemp -d)"
trap 'rm -rf "${staging}"' EXIT
for wheel in "${wheels}"/mlc_llvm_static-"${version}"-*.whl \
             "${wheels}"/mlc_llvm_static_extra_targets-"${version}"-*.whl; do
    python3 -m zipfile -e "${wheel}" "${staging}"
done
test -f "${staging}/mlc_llvm_static/static/bin/llvm-config" \
    || { echo "setup-llvm: the wheels hold no bin/llvm-config" >&2; exit 1; }

mkdir -p "$(dirname "${prefix}")"
rm -rf "${prefix}"
mv "${staging}/mlc_llvm_static/static" "${prefix}"
chmod +x "${prefix}/bin/llvm-config"
"${prefix}/bin/llvm-config" --version >/dev/null
touch "${marker}"
echo "setup-llvm: LLVM $("${prefix}/bin/llvm-config" --version) in ${prefix}"
