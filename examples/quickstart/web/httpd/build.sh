#!/bin/sh
# Assembles httpd for linux/amd64 and linux/arm64 from amd64.S and arm64.S with GNU binutils
# (Debian: binutils-x86-64-linux-gnu and binutils-aarch64-linux-gnu) and writes the raw bytes
# of each: every file starts with its own ELF header, so there is no linker and no layout to vary.
# Usage: build.sh [FOLDER] (default: this folder; tests/examples.rs checks the committed bytes).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pair in amd64:x86_64-linux-gnu- arm64:aarch64-linux-gnu-; do
  arch=${pair%%:*} prefix=${pair#*:}
  "${prefix}as" -o "$tmp/$arch.o" "$here/$arch.S"
  "${prefix}objcopy" -O binary -j .text "$tmp/$arch.o" "$out/$arch"
  chmod 755 "$out/$arch"
done
