#!/usr/bin/env bash
# Builds a Postgres 15 image from Debian's packages, for machines that cannot pull
# images from a registry. Usage: .ci/build-postgres-image.sh [NAME:TAG]
# Needs root, debootstrap and a running Docker engine.
set -euo pipefail
image=${1:-atomic-signup-postgres:15}
here=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "image $image already exists"
  exit 0
fi

rootfs=$(mktemp -d /tmp/pg-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=postgresql-15 bookworm "$rootfs" "$mirror" >/tmp/debootstrap.log 2>&1 \
  || { tail -n 30 /tmp/debootstrap.log >&2; exit 1; }
install -m 0755 "$here/postgres-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
# The Debian package creates a cluster under /var/lib/postgresql/15/main; we do our own initdb.
rm -rf "$rootfs/var/lib/postgresql/15" "$rootfs/var/cache/apt/archives/"*.deb
tar -C "$rootfs" -c . | docker import \
  -c 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
  -c 'CMD ["postgres"]' \
  -c 'EXPOSE 5432' \
  -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  - "$image" >/dev/null
echo "built $image"
