#!/usr/bin/env bash
# Newcomer command 2: every test rswarm has, on this machine, as root.
#
#   bash tests/run-all.sh
#
# Installs the Debian packages the tests need (tests/packages.txt), builds the rswarm
# binary, runs `cargo test --workspace` (the unit tests and the multi-host tests on
# network namespaces, which drive that binary), and on the way out removes whatever
# a crashed test left behind (tests/cleanup-leftovers.sh). The exit code is the
# tests' result. Extra arguments go to `cargo test` (e.g. `-- --test-threads=1`).
#
# Time: the whole run, build included, is held to RSWARM_TEST_BUDGET seconds
# (default 80 minutes, inside CI's 90): tests still running then are killed and the
# run fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "run-all: run me as root: the tests build network namespaces and mount filesystems" >&2
    exit 1
fi
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || { echo "run-all: needs a Rust toolchain (cargo; rust >= 1.85, e.g. from rustup)" >&2; exit 1; }

budget=${RSWARM_TEST_BUDGET:-4800}
trap 'bash tests/cleanup-leftovers.sh' EXIT
bash tests/cleanup-leftovers.sh

echo "==> Debian packages"
bash tests/install-packages.sh

echo "==> cargo build -p rswarm"
cargo build -p rswarm
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
export RSWARM_BIN="$target_dir/debug/rswarm"

left=$((budget - SECONDS))
echo "==> cargo test --workspace (RSWARM_BIN=$RSWARM_BIN, ${left}s left of the ${budget}s budget)"
if [ "$left" -le 60 ]; then
    echo "run-all: the build used up the time budget" >&2
    exit 1
fi
timeout --kill-after=30 "$left" cargo test --workspace --no-fail-fast "$@"
