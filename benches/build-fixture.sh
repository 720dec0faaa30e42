#!/usr/bin/env bash
# Builds the scan benchmark / demo fixture: an OCI layout with a real Debian 12
# minbase root filesystem (debootstrap, 88 packages) as the base layer, an app layer
# with Python and npm packages and two planted secrets, and a top layer that deletes
# one secret file (whiteout) and one npm package directory (opaque dir).
#
#   benches/build-fixture.sh [OUT_DIR]      (default: target/scan-fixture)
#   ROOTFS=/path/to/existing/rootfs benches/build-fixture.sh   reuse a debootstrap tree
#
# Result: OUT_DIR/oci with tag "app" (scan it with: pullwarden scan oci:OUT_DIR/oci:app),
# and tag "app-hardlinks": the same packages arriving by hard link (below).
# Needs: debootstrap, umoci, tar; root (debootstrap, device nodes, ownership).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/target/scan-fixture}
rootfs=${ROOTFS:-$out/rootfs}
oci=$out/oci
mkdir -p "$out"

if [ ! -e "$rootfs/var/lib/dpkg/status" ]; then
    echo "debootstrap --variant=minbase bookworm $rootfs (about a minute)" >&2
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
fi

rm -rf "$oci" "$out/layers"
mkdir -p "$out/layers"
umoci init --layout "$oci"
umoci new --image "$oci:app"

# Layer 1: the Debian root filesystem, as docker would commit it.
tar --numeric-owner --xattrs -C "$rootfs" -cf "$out/layers/base.tar" .
umoci raw add-layer --image "$oci:app" --history.created_by "debootstrap --variant=minbase bookworm" "$out/layers/base.tar"

# Layer 2: application dependencies and files.
app=$out/layers/app
rm -rf "$app"
py=$app/usr/local/lib/python3.11/dist-packages
mkdir -p "$py/requests-2.31.0.dist-info" "$py/urllib3-2.0.7.dist-info" "$py/PyYAML-6.0.1.egg-info"
printf 'Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nSummary: Python HTTP for Humans.\nLicense: Apache 2.0\nRequires-Dist: urllib3 (<3,>=1.21.1)\n\nRequests is an HTTP library.\n' > "$py/requests-2.31.0.dist-info/METADATA"
printf 'Metadata-Version: 2.1\nName: urllib3\nVersion: 2.0.7\nLicense-Expression: MIT\n\n' > "$py/urllib3-2.0.7.dist-info/METADATA"
printf 'Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.1\nLicense: MIT\n' > "$py/PyYAML-6.0.1.egg-info/PKG-INFO"
nm=$app/app/node_modules
mkdir -p "$nm/express" "$nm/@types/node" "$nm/lodash" "$nm/express/lib"
printf '{"name":"express","version":"4.18.2","license":"MIT","main":"index.js"}\n' > "$nm/express/package.json"
printf '{"name":"not-a-package","version":"0.0.0"}\n' > "$nm/express/lib/package.json"
printf '{"name":"@types/node","version":"20.11.5","license":"MIT"}\n' > "$nm/@types/node/package.json"
printf '{"name":"lodash","version":"4.17.21","license":"MIT"}\n' > "$nm/lodash/package.json"
printf '{"name":"demo-app","version":"1.0.0","dependencies":{"express":"^4.18.2"}}\n' > "$app/app/package.json"
mkdir -p "$app/app/config"
printf '# deployment settings\nREGION=eu-west-1\nAWS_ACCESS_KEY_ID=AKIA2E0A8F3B244C9986\n# the documented example is not a finding:\nEXAMPLE_KEY=AKIAIOSFODNN7EXAMPLE\n' > "$app/app/config/.env"
printf 'deploy token\nghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R\n' > "$app/app/old-credentials.txt"
tar --numeric-owner --owner=0 --group=0 -C "$app" -cf "$out/layers/app.tar" .
umoci raw add-layer --image "$oci:app" --history.created_by "COPY app /" "$out/layers/app.tar"

# Layer 3: deletes a secret file (it still ships in layer 2) and hides lodash.
del=$out/layers/del
rm -rf "$del"
mkdir -p "$del/app/node_modules/lodash"
: > "$del/app/.wh.old-credentials.txt"
: > "$del/app/node_modules/lodash/.wh..wh..opq"
tar --numeric-owner --owner=0 --group=0 -C "$del" -cf "$out/layers/del.tar" .
umoci raw add-layer --image "$oci:app" --history.created_by "RUN rm /app/old-credentials.txt && rm -rf /app/node_modules/lodash/*" "$out/layers/del.tar"

# The same image with its packages arriving by hard link, as real builds make them:
# the base layer keeps a snapshot of dpkg's database in /var/cache/dpkg-snapshot, archived
# before /var/lib (tar --sort=name), so /var/lib/dpkg/status and every dpkg file list are
# hard links to it;
# the app layer installs its Python distributions as uv does, hard-linked from
# /root/.cache/uv; the top layer removes both caches.
umoci new --image "$oci:app-hardlinks"
stage=$out/layers/stage
rm -rf "$stage"
cp -al "$rootfs" "$stage"
cp -al "$stage/var/lib/dpkg" "$stage/var/cache/dpkg-snapshot"
tar --numeric-owner --xattrs --sort=name -C "$stage" -cf "$out/layers/base-links.tar" .
umoci raw add-layer --image "$oci:app-hardlinks" --history.created_by "debootstrap; cp -al /var/lib/dpkg /var/cache/dpkg-snapshot" "$out/layers/base-links.tar"
rm -rf "$stage"
uvapp=$out/layers/uvapp
rm -rf "$uvapp"
mkdir -p "$uvapp/root/.cache/uv/archive-v0"
cp -a "$app/usr/local/lib/python3.11/dist-packages" "$uvapp/root/.cache/uv/archive-v0/Xq3"
mkdir -p "$uvapp/usr/local/lib/python3.11"
cp -al "$uvapp/root/.cache/uv/archive-v0/Xq3" "$uvapp/usr/local/lib/python3.11/site-packages"
cp -a "$app/app" "$uvapp/app"
tar --numeric-owner --owner=0 --group=0 --sort=name -C "$uvapp" -cf "$out/layers/uvapp.tar" .
umoci raw add-layer --image "$oci:app-hardlinks" --history.created_by "RUN uv pip install --system -r requirements.txt" "$out/layers/uvapp.tar"
rm -rf "$uvapp"
clean=$out/layers/clean
rm -rf "$clean"
mkdir -p "$clean/root" "$clean/var/cache"
: > "$clean/var/cache/.wh.dpkg-snapshot"
: > "$clean/root/.wh..cache"
tar --numeric-owner --owner=0 --group=0 -C "$clean" -cf "$out/layers/clean.tar" .
umoci raw add-layer --image "$oci:app-hardlinks" --history.created_by "RUN rm -rf /var/cache/dpkg-snapshot /root/.cache" "$out/layers/clean.tar"

rm -rf "$out/layers"
echo "$oci:app"
echo "$oci:app-hardlinks"
