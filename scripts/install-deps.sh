#!/usr/bin/env bash
# Installs the Debian 12 packages that building, testing and the demo need.
# Idempotent; quiet when everything is already present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libfuse3-dev fuse3 libssl-dev openssl
      libsqlite3-dev sqlite3 libcurl4-openssl-dev curl libjansson-dev
      libcmocka-dev libpsl-dev publicsuffix attr python3 xxd util-linux iproute2
      clang libclang-rt-14-dev)  # clang: the fuzz targets (scripts/fuzz.sh)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
