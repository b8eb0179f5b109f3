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
# 5. runs the main job as far as the project goes today.
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

step "The main job: a service on real containers"
rswarm node ls

# No registry on the internet here: build a small image from Debian's
# busybox-static (a docker-save archive: one layer, a config, a manifest) and
# load it into this node's image store.
image_dir=$(mktemp -d)
trap 'rm -rf "$image_dir"' EXIT
mkdir -p "$image_dir/rootfs/bin" "$image_dir/rootfs/etc" "$image_dir/rootfs/tmp" "$image_dir/rootfs/var/www" "$image_dir/out"
cp /bin/busybox "$image_dir/rootfs/bin/busybox"
for applet in sh httpd sleep echo cat ls wget hostname env id; do ln -sf busybox "$image_dir/rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$image_dir/rootfs/etc/passwd"
echo 'root:x:0:' >"$image_dir/rootfs/etc/group"
echo '<h1>hello from rswarm</h1>' >"$image_dir/rootfs/var/www/index.html"
chmod 1777 "$image_dir/rootfs/tmp"
tar --numeric-owner -C "$image_dir/rootfs" -cf "$image_dir/layer.tar" .
diff_id=$(sha256sum "$image_dir/layer.tar" | cut -d' ' -f1)
mkdir -p "$image_dir/out/$diff_id"
mv "$image_dir/layer.tar" "$image_dir/out/$diff_id/layer.tar"
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$(dpkg --print-architecture)" "$diff_id" >"$image_dir/config.json"
config_id=$(sha256sum "$image_dir/config.json" | cut -d' ' -f1)
mv "$image_dir/config.json" "$image_dir/out/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["quickstart/busybox:1"],"Layers":["%s/layer.tar"]}]' "$config_id" "$diff_id" >"$image_dir/out/manifest.json"
tar -C "$image_dir/out" -cf "$image_dir/busybox.tar" .
rswarm image load -i "$image_dir/busybox.tar"

rswarm service rm hello >/dev/null 2>&1 || true
rswarm service create --name hello --replicas 2 --publish 8080:80 --update-monitor 1s \
    --hostname 'hello-{{.Task.Slot}}' quickstart/busybox:1 \
    sh -c 'echo "<h1>hello from $(hostname)</h1>" >/var/www/index.html && exec httpd -f -p 80 -h /var/www'
rswarm service ls
rswarm service ps hello
echo "--- hello answering on this node's published port 8080 (the routing mesh balances over both tasks):"
ok=0
for _ in $(seq 50); do
    if curl -fsS -m 2 http://127.0.0.1:8080/; then ok=1; break; fi
    sleep 0.2
done
[ "$ok" = 1 ] || die "http://127.0.0.1:8080/ did not answer; see $log"
for _ in 1 2 3; do curl -fsS -m 2 http://127.0.0.1:8080/; done

cat <<DONE

rswarm is running: a one-node swarm on this machine.
  use it:   $bin -H unix://$socket service ps hello
  its log:  $log
  stop it:  kill \$(cat $pidfile)
  again:    bash cli/quickstart.sh   (stops this daemon, keeps the swarm)
DONE
