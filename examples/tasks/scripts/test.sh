#!/bin/sh
# The example's "test suite": every source file must be non-empty and end with a newline.
set -eu
for f in src/*; do
  [ -s "$f" ] || { echo "empty: $f" >&2; exit 1; }
  [ "$(tail -c 1 "$f" | od -An -c | tr -d ' ')" = '\n' ] || { echo "no final newline: $f" >&2; exit 1; }
done
echo "ok: $(ls src | wc -l) files"
