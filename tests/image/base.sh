#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Makes the base image the Dockerfile's build stage names (debian:bookworm) in podman's local
# storage. No registry is reachable where the image test runs, so the base is built from Debian's
# own packages: `debootstrap --variant=minbase bookworm` from the mirror this machine's apt sources
# name, packed once into BUILD/image/debian-bookworm-minbase.tar (kept: a second run imports the
# tarball in seconds) and imported with `podman import`, tagged as the FROM line spells it.
# The final stage is `scratch`, which needs no image.
#
# usage: tests/image/base.sh BUILD_DIR PODMAN...   (PODMAN: the podman command and its global flags)
set -eu

build=$1
shift
tarball=$build/image/debian-bookworm-minbase.tar

if "$@" image exists docker.io/library/debian:bookworm; then
	echo "base.sh: debian:bookworm already in podman's storage"
	exit 0
fi

if [ ! -s "$tarball" ]; then
	command -v debootstrap >/dev/null || {
		echo "base.sh: debootstrap is not installed and $tarball is missing" >&2
		exit 1
	}
	# The first URI of the machine's Debian sources (deb822 or one-line format).
	mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
		awk '/^URIs:/ && $2 !~ /security/ { print $2; exit } /^deb / && $2 !~ /security/ { print $2; exit }')
	mirror=${mirror:-http://deb.debian.org/debian}
	rootfs=$(mktemp -d)
	trap 'rm -rf "$rootfs"' EXIT
	echo "base.sh: debootstrap --variant=minbase bookworm from $mirror (a few minutes, once)"
	debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$build/image/debootstrap.log" 2>&1 || {
		tail -20 "$build/image/debootstrap.log" >&2
		exit 1
	}
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	mkdir -p "$build/image"
	tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
	mv "$tarball.tmp" "$tarball"
fi
"$@" import --change 'CMD ["/bin/bash"]' "$tarball" docker.io/library/debian:bookworm >/dev/null
echo "base.sh: imported $tarball as debian:bookworm"
