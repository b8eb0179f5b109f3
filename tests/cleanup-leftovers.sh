#!/usr/bin/env bash
# Removes what rswarm test clusters left behind when their test process died before
# its teardown ran (killed by a timeout, aborted): their daemons and other processes,
# their network namespaces, the mounts under their directories, the directories.
#
# Test clusters are named rsw<pid>c<n> after the test process that made them (see
# tests/src/lib.rs): namespaces rsw<pid>c<n>sw and rsw<pid>c<n>h<i>, directory
# /tmp/rsw<pid>c<n>/. Only leftovers whose test process is gone are touched, so this
# is safe to run while other tests run. Nothing outside those names is touched (a
# daemon started by cli/quickstart.sh, with its data in /var/lib/rswarm, is not).
set -uo pipefail

removed=0
say() { echo "cleanup-leftovers: $*"; removed=$((removed + 1)); }
# owner PID is alive?
alive() { [ -d "/proc/$1" ]; }

# 1. Processes whose command line names a test cluster's directory (the daemons:
#    --data-dir /tmp/rsw<pid>c<n>/hN/data) and whose test process is gone.
for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [ "$pid" = "$$" ] && continue
    cmdline=$( { tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null) || continue
    if [[ $cmdline =~ /tmp/rsw([0-9]+)c[0-9]+/ ]]; then
        owner=${BASH_REMATCH[1]}
        if ! alive "$owner"; then
            kill -9 "$pid" 2>/dev/null && say "killed pid $pid ($cmdline) of dead test process $owner"
        fi
    fi
done

# 2. Network namespaces, with whatever still runs inside them.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ $ns =~ ^rsw([0-9]+)c[0-9]+(sw|h[0-9]+)$ ]] || continue
    owner=${BASH_REMATCH[1]}
    alive "$owner" && continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill -9 "$pid" 2>/dev/null
    done
    ip netns delete "$ns" && say "deleted namespace $ns of dead test process $owner"
done

# 3. Directories: unmount (lazily, deepest first) whatever is mounted below them, then
#    remove them without crossing into any mount that is still there.
mounts_under() {
    awk '{print $5}' /proc/self/mountinfo | while read -r mp; do
        mp=$(printf '%b' "$mp")   # mountinfo writes space as \040
        case "$mp" in "$1" | "$1"/*) echo "$mp" ;; esac
    done | awk -F/ '{print NF "\t" $0}' | sort -rn | cut -f2-
}
for dir in /tmp/rsw[0-9]*c[0-9]*; do
    [ -d "$dir" ] || continue
    [[ $dir =~ ^/tmp/rsw([0-9]+)c[0-9]+$ ]] || continue
    owner=${BASH_REMATCH[1]}
    alive "$owner" && continue
    for _pass in 1 2 3 4 5 6 7 8; do
        mounted=$(mounts_under "$dir")
        [ -z "$mounted" ] && break
        while IFS= read -r mp; do umount -l "$mp" 2>/dev/null; done <<<"$mounted"
    done
    if [ -n "$(mounts_under "$dir")" ]; then
        echo "cleanup-leftovers: NOT removing $dir: still mounted below it:" >&2
        mounts_under "$dir" >&2
        continue
    fi
    rm -rf --one-file-system "$dir" && say "removed $dir of dead test process $owner"
done

[ "$removed" -eq 0 ] && echo "cleanup-leftovers: nothing left over"
exit 0
