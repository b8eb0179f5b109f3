#!/usr/bin/env bash
# Builds the image every stack example runs, offline: `quickstart/busybox:1`, a
# docker-save archive of one layer holding Debian's busybox-static with all its
# applets (sh, httpd, nc, wget, ...), a passwd/group file and an empty /tmp.
#
#   bash stack-examples/busybox-image.sh OUT.tar      then:   rswarm image load -i OUT.tar
#
# Load it on every node that may run the examples' tasks (the quickstart's one
# node does it for you). Needs /bin/busybox from the busybox-static package.
set -euo pipefail
out=${1:?usage: busybox-image.sh OUT.tar}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "busybox-image: no $busybox (apt-get install busybox-static)" >&2; exit 1; }
"$busybox" --list >/dev/null 2>&1 || { echo "busybox-image: $busybox is not busybox" >&2; exit 1; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/rootfs/var/www" "$dir/out"
cp "$busybox" "$dir/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/rootfs/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >>"$dir/rootfs/etc/passwd"
echo 'root:x:0:' >"$dir/rootfs/etc/group"
echo 'nogroup:x:65534:' >>"$dir/rootfs/etc/group"
echo '<h1>hello from rswarm</h1>' >"$dir/rootfs/var/www/index.html"
chmod 1777 "$dir/rootfs/tmp"
tar --numeric-owner --owner=0 --group=0 -C "$dir/rootfs" -cf "$dir/layer.tar" .
diff_id=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
mkdir -p "$dir/out/$diff_id"
mv "$dir/layer.tar" "$dir/out/$diff_id/layer.tar"
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$diff_id" >"$dir/config.json"
config_id=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
mv "$dir/config.json" "$dir/out/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["quickstart/busybox:1"],"Layers":["%s/layer.tar"]}]' "$config_id" "$diff_id" >"$dir/out/manifest.json"
tar -C "$dir/out" -cf "$out" .
