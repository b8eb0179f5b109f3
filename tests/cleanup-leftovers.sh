#!/usr/bin/env bash
# Removes what rswarm test clusters left behind when their test process died before
# its teardown ran (killed by a timeout, aborted): their daemons and other processes
# (the registry too), the containers the daemons ran with runc and their cgroups,
# their network namespaces, the mounts under their directories, the directories.
#
# Test clusters are named rsw<pid>c<n> after the test process that made them (see
# tests/src/lib.rs): namespaces rsw<pid>c<n>sw and rsw<pid>c<n>h<i>, directory
# /tmp/rsw<pid>c<n>/ (host N's data dir is hN/data, its runc root hN/data/runc); a
# test process's images are in /tmp/rsw<pid>img/. Only leftovers whose test process
# is gone are touched, so this is safe to run while other tests run. Nothing outside
# those names is touched (a daemon started by cli/quickstart.sh, with its data in
# /var/lib/rswarm, is not).
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

# 2. Containers: the daemons ran them with `runc --root <data-dir>/runc`, and they
#    outlive their daemon (live restore). Kill and delete each, then remove what is
#    left of its cgroup (/sys/fs/cgroup/<controller>/rswarm/[<parent>/]<id>, killing
#    whatever still runs in it; bundles are <data-dir>/containers/<id>/).
remove_cgroup() { # DIR: kill its processes (and below), thaw it, rmdir deepest first
    local pass d
    for pass in 1 2 3 4 5 6 7 8 9 10; do
        local busy=0
        while IFS= read -r d; do
            for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; busy=1; done
            [ -e "$d/freezer.state" ] && echo THAWED >"$d/freezer.state" 2>/dev/null
        done < <(find "$1" -depth -type d 2>/dev/null)
        [ "$busy" -eq 0 ] && break
        sleep 0.1
    done
    find "$1" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ ! -d "$1" ]
}
for data in /tmp/rsw[0-9]*c[0-9]*/h[0-9]*/data; do
    [ -d "$data" ] || continue
    [[ $data =~ ^/tmp/rsw([0-9]+)c[0-9]+/h[0-9]+/data$ ]] || continue
    owner=${BASH_REMATCH[1]}
    alive "$owner" && continue
    ids=()
    if [ -d "$data/runc" ] && command -v runc >/dev/null; then
        for id in $(runc --root "$data/runc" list -q 2>/dev/null); do
            ids+=("$id")
            runc --root "$data/runc" kill "$id" KILL 2>/dev/null
            runc --root "$data/runc" delete --force "$id" 2>/dev/null &&
                say "deleted container $id of $data (dead test process $owner)"
        done
    fi
    for bundle in "$data"/containers/*; do
        [ -d "$bundle" ] && ids+=("$(basename "$bundle")")
    done
    for id in "${ids[@]}"; do
        case $id in "" | .* | */*) continue ;; esac
        for cg in /sys/fs/cgroup/rswarm/"$id" /sys/fs/cgroup/*/rswarm/"$id" \
            /sys/fs/cgroup/rswarm/*/"$id" /sys/fs/cgroup/*/rswarm/*/"$id"; do
            [ -d "$cg" ] || continue
            if remove_cgroup "$cg"; then
                say "removed cgroup $cg of dead test process $owner"
            else
                echo "cleanup-leftovers: cannot remove cgroup $cg" >&2
            fi
        done
    done
done

# 3. Network namespaces, with whatever still runs inside them.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ $ns =~ ^rsw([0-9]+)c[0-9]+(sw|h[0-9]+)$ ]] || continue
    owner=${BASH_REMATCH[1]}
    alive "$owner" && continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill -9 "$pid" 2>/dev/null
    done
    ip netns delete "$ns" && say "deleted namespace $ns of dead test process $owner"
done

# 3b. Namespaces of the overlay crate's tests (rsov<pid><tag><n>[ab], see
#     overlay/tests/common) whose test process is gone.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ $ns =~ ^rsov([0-9]+)[a-z] ]] || continue
    owner=${BASH_REMATCH[1]}
    alive "$owner" && continue
    ip netns delete "$ns" && say "deleted namespace $ns of dead overlay test process $owner"
done

# 3c. WireGuard leftovers (rswg<…>, overlay/src/wireguard): a UAPI socket
#     /var/run/wireguard/rswg*.sock nobody listens on any more (its userspace
#     device died with its process), and persistent TUNs named rswg* (rswarm never
#     makes one persistent; the tests fake leftovers with them), in the root
#     namespace and in every named one. Kernel WireGuard links in a namespace
#     die with it (step 3); one in the root namespace belongs to a real daemon.
listening=$(ss -xlH 2>/dev/null | awk '{print $5}')
for sock in /var/run/wireguard/rswg*.sock; do
    [ -e "$sock" ] || continue
    grep -qxF "$sock" <<<"$listening" && continue
    rm -f "$sock" && say "removed stale WireGuard socket $sock"
done
for ns in "" $(ip netns list 2>/dev/null | awk '{print $1}'); do
    nsopt=()
    [ -n "$ns" ] && nsopt=(-n "$ns")
    for dev in $(ip "${nsopt[@]}" -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^rswg'); do
        if ip "${nsopt[@]}" -d link show "$dev" 2>/dev/null | grep -q 'tun type tun.*persist on'; then
            ip "${nsopt[@]}" link delete "$dev" && say "deleted persistent TUN $dev ${ns:+in namespace $ns}"
        fi
    done
done

# 4. Directories: unmount (lazily, deepest first) whatever is mounted below them, then
#    remove them without crossing into any mount that is still there.
mounts_under() {
    awk '{print $5}' /proc/self/mountinfo | while read -r mp; do
        mp=$(printf '%b' "$mp")   # mountinfo writes space as \040
        case "$mp" in "$1" | "$1"/*) echo "$mp" ;; esac
    done | awk -F/ '{print NF "\t" $0}' | sort -rn | cut -f2-
}
for dir in /tmp/rsw[0-9]*c[0-9]* /tmp/rsw[0-9]*img; do
    [ -d "$dir" ] || continue
    [[ $dir =~ ^/tmp/rsw([0-9]+)(c[0-9]+|img)$ ]] || continue
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
