#!/usr/bin/env bash
# Newcomer command 1: from a fresh Debian machine to a running one-node rswarm cluster.
#
#   bash cli/quickstart.sh          (as root)
#
# 1. installs the Debian packages rswarm needs (the list: tests/packages.txt),
# 2. builds the release binary (cargo build --release -p rswarm),
# 3. starts `rswarm daemon` in the background (data in /var/lib/rswarm, socket
#    /run/rswarm/rswarm.sock, log /var/log/rswarm-quickstart.log),
# 4. makes it a one-node swarm (`rswarm init`),
# 5. runs the main job: deploys the web + redis example stack (stack-examples/web-redis)
#    with `rswarm stack deploy` and shows it answering through the routing mesh.
#
# Safe to run again: a daemon from an earlier run is stopped first, and a node that
# is already a swarm manager is kept as it is (no second init).
#
# Knobs: RSWARM_DATA_DIR, RSWARM_SOCKET, RSWARM_LOG, RSWARM_ADVERTISE_ADDR (default:
# this machine's first global IPv4 address, else 127.0.0.1), RSWARM_BIN (use this
# binary instead of building one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

data_dir=${RSWARM_DATA_DIR:-/var/lib/rswarm}
socket=${RSWARM_SOCKET:-/run/rswarm/rswarm.sock}
log=${RSWARM_LOG:-/var/log/rswarm-quickstart.log}
pidfile="$(dirname "$socket")/quickstart.pid"

step() { printf '\n==> %s\n' "$*"; }
die() { echo "quickstart: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run me as root: rswarm manages network namespaces, nftables and containers"

step "Debian packages"
bash tests/install-packages.sh

if [ -n "${RSWARM_BIN:-}" ]; then
    bin=$RSWARM_BIN
    step "Using $bin (RSWARM_BIN), not building"
else
    step "cargo build --release -p rswarm"
    if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null || die "needs a Rust toolchain (cargo; rust >= 1.85, e.g. from rustup)"
    cargo build --release -p rswarm
    target_dir=${CARGO_TARGET_DIR:-target}
    case $target_dir in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
    bin="$target_dir/release/rswarm"
fi
[ -x "$bin" ] || die "no rswarm binary at $bin"
rswarm() { "$bin" -H "unix://$socket" "$@"; }

step "Stopping a daemon from an earlier run, if any"
previous=$( { cat "$pidfile" 2>/dev/null || true; pgrep -f -- "daemon .*--socket $socket( |\$)" || true; } | sort -u)
for pid in $previous; do
    grep -q -- "daemon" "/proc/$pid/cmdline" 2>/dev/null || continue
    echo "stopping rswarm daemon pid $pid"
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { echo "pid $pid ignored SIGTERM for 20s: SIGKILL"; kill -KILL "$pid"; }
done
rm -f "$pidfile"

step "Starting rswarm daemon (log: $log)"
mkdir -p "$data_dir" "$(dirname "$socket")" "$(dirname "$log")"
echo "=== quickstart $(date -Is): $bin daemon --data-dir $data_dir --socket $socket ===" >>"$log"
RUST_LOG=${RUST_LOG:-info} setsid nohup "$bin" daemon --data-dir "$data_dir" --socket "$socket" \
    --node-name "$(uname -n)" >>"$log" 2>&1 </dev/null &
daemon_pid=$!
echo "$daemon_pid" >"$pidfile"
for _ in $(seq 150); do
    rswarm info >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "the daemon exited; its log is above"; }
    sleep 0.2
done
rswarm info >/dev/null 2>&1 || { tail -n 30 "$log" >&2; die "the daemon does not answer on $socket after 30s"; }
echo "rswarm daemon running, pid $daemon_pid"

step "One-node swarm"
if rswarm info 2>/dev/null | grep -qE '^[[:space:]]*Swarm:[[:space:]]*active'; then
    echo "this node is already in a swarm (state in $data_dir): keeping it"
else
    addr=${RSWARM_ADVERTISE_ADDR:-$(ip -4 -o addr show scope global | awk '{split($4, a, "/"); print a[1]; exit}')}
    addr=${addr:-127.0.0.1}
    rswarm init --advertise-addr "$addr"
fi

step "The main job: a stack from a Compose file (stack-examples/web-redis)"
rswarm node ls

# No registry on the internet here: the examples' image is built offline from
# Debian's busybox-static (a docker-save archive) and loaded into this node's
# image store.
image_dir=$(mktemp -d)
trap 'rm -rf "$image_dir"' EXIT
bash stack-examples/busybox-image.sh "$image_dir/busybox.tar"
rswarm image load -i "$image_dir/busybox.tar"

rswarm stack deploy --detach=false -c stack-examples/web-redis/app.yml shop
rswarm stack ls
rswarm stack services shop
rswarm stack ps shop
echo "--- shop_web answering on this node's published port 8080 (the routing mesh balances"
echo "    over both web tasks; each asks shop_redis, by its short name, for the next count):"
ok=0
for _ in $(seq 100); do
    if curl -fsS -m 3 http://127.0.0.1:8080/cgi-bin/hit; then ok=1; break; fi
    sleep 0.2
done
[ "$ok" = 1 ] || die "http://127.0.0.1:8080/cgi-bin/hit did not answer; see $log"
for _ in 1 2 3; do curl -fsS -m 3 http://127.0.0.1:8080/cgi-bin/hit; done

cat <<DONE

rswarm is running: a one-node swarm on this machine.
  use it:   $bin -H unix://$socket stack ps shop
  more:     stack-examples/README.md (three more stacks to deploy)
  its log:  $log
  stop it:  kill \$(cat $pidfile)
  again:    bash cli/quickstart.sh   (stops this daemon, keeps the swarm)
DONE
