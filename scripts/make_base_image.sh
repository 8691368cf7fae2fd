#!/usr/bin/env bash
# Build the registry-free base image for the sandbox images: a minimal Debian
# bookworm with python3 and venv, made with debootstrap and `docker import`.
# Idempotent: does nothing when the image already exists (pass --force to rebuild).
#
#   scripts/make_base_image.sh [--force] [IMAGE]     (default IMAGE: sotalab-base:bookworm)
#
# Needs root, debootstrap and a running Docker engine. MIRROR overrides the Debian mirror.
set -euo pipefail

force=0
if [[ "${1:-}" == "--force" ]]; then force=1; shift; fi
image="${1:-sotalab-base:bookworm}"
mirror="${MIRROR:-http://deb.debian.org/debian}"

if [[ $force -eq 0 ]] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image exists; reusing it"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }

root="$(mktemp -d /tmp/sotalab-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"
# Trim what an image does not need: apt lists and caches, docs, man pages.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
       "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$image"
echo "built base image $image"
