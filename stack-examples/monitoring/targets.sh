#!/bin/sh
# Writes the Prometheus targets of every node of the swarm, as `rswarm node ls`
# and `rswarm node inspect` show them, to a file_sd file:
#
#   [{"targets": ["10.0.0.1:9323"], "labels": {"hostname": "node1", "node_role": "manager"}}, ...]
#
# usage: targets.sh OUT.json [PORT]      (PORT: the nodes' --metrics-addr port, 9323)
#   INTERVAL=30 targets.sh OUT.json      (write it again every 30 s, until killed)
#   RSWARM="rswarm -H unix:///run/rswarm.sock" targets.sh OUT.json
#
# Run it on a manager (only managers answer `node ls`). Down nodes stay in the
# file, so Prometheus shows them as `up == 0` instead of forgetting them. The
# file is replaced atomically (written beside it, then renamed): Prometheus
# never reads half of it.
set -eu
out=${1:?usage: targets.sh OUT.json [PORT]}
port=${2:-9323}
rswarm=${RSWARM:-rswarm}
interval=${INTERVAL:-0}

write_once() {
    # Each step checked by hand: `set -e` does not apply in `write_once || ...`,
    # and a failed listing must keep the last file, not empty it.
    ids=$($rswarm node ls -q) || return 1
    [ -n "$ids" ] || return 1
    # shellcheck disable=SC2086 # ids are one word each
    nodes=$($rswarm node inspect --format '{{.Status.Addr}} {{.Description.Hostname}} {{.Spec.Role}}' $ids) || return 1
    tmp="$out.tmp.$$"
    printf '%s\n' "$nodes" | {
        printf '['
        sep=''
        while read -r addr hostname role; do
            # Only an IP address (a node with none yet reads `<no value>`).
            case "$addr" in '' | 0.0.0.0 | *[!0-9a-fA-F.:]*) continue ;; esac
            printf '%s\n  {"targets": ["%s:%s"], "labels": {"hostname": "%s", "node_role": "%s"}}' \
                "$sep" "$addr" "$port" "$hostname" "$role"
            sep=','
        done
        printf '\n]\n'
    } >"$tmp" || return 1
    mv "$tmp" "$out"
}

write_once || {
    echo "targets.sh: cannot list the nodes with \`$rswarm node ls\` (run it on a manager)" >&2
    exit 1
}
while [ "$interval" -gt 0 ]; do
    sleep "$interval"
    write_once || echo "targets.sh: could not list the nodes; keeping the last $out" >&2
done
