#!/usr/bin/env bash
# Installs the Debian packages listed in tests/packages.txt that are not installed yet
# (apt-get update only when something is missing). Run as root; no questions asked.
set -euo pipefail

list="$(dirname "${BASH_SOURCE[0]}")/packages.txt"
mapfile -t wanted < <(sed -e 's/#.*//' "$list" | awk 'NF {print $1}')

missing=()
for package in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$package")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-packages: all ${#wanted[@]} packages from $list are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-packages: missing ${missing[*]}; run as root to install them" >&2
    exit 1
fi
echo "install-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
