#!/usr/bin/env bash
# Image graphs: `hephy plan` after one leaf file changed vs `ninja -n` on the same shape.
# N images (default 1,000) × 2 platforms, each with a manifest: 3N nodes. Each image's context
# is a Dockerfile (`FROM scratch` + `COPY`, or `FROM ${BASE}` for an image built `from` another)
# and one file; an image depends on up to two earlier ones (the first by `from`, the rest by
# `after`). Everything is built once with the built-in `oci` builder (no network). Then, round
# after round: the leaf image's file is changed, `hephy run` builds it, the file is changed again
# and `hephy plan` is timed; `ninja -n` is timed on 3N edges of the same shape after touching the
# same file. Best of ROUNDS (default 5). Figures go into notes, never into tests.
# Usage: benches/image_plan.sh [N] (after `cargo build --release`); HEPHY=path picks the binary,
# BEFORE=path measures a second binary side by side (e.g. one built from main).
set -euo pipefail
n=${1:-1000}
rounds=${ROUNDS:-5}
hephy="${HEPHY:-$(cd "$(dirname "$0")/.." && pwd)/target/release/hephy}"
[ -x "$hephy" ] || { echo "build first: cargo build --release"; exit 1; }
command -v ninja > /dev/null || { echo "ninja is not installed (apt-get install ninja-build)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
x=42
next() { x=$(( x ^ ((x << 13) & 0x7fffffffffffffff) )); x=$(( x ^ (x >> 7) )); x=$(( x ^ ((x << 17) & 0x7fffffffffffffff) )); }
{
  printf 'platforms "linux/amd64" "linux/arm64"\n\n'
} > hephy.kdl
printf 'rule stamp\n  command = touch $out\n\n' > build.ninja
for i in $(seq 0 $((n - 1))); do
  mkdir -p "img$i"
  deps=()
  if [ "$i" -gt 0 ]; then
    next; k=$(( x % 3 ))
    for _ in $(seq 1 "$k"); do
      next; j=$(( x % i ))
      case " ${deps[*]-} " in *" $j "*) ;; *) deps+=("$j") ;; esac
    done
  fi
  printf 'app %d\n' "$i" > "img$i/app.txt"
  {
    printf 'image "img%d" {\n    context "img%d"\n' "$i" "$i"
    if [ "${#deps[@]}" -gt 0 ]; then
      printf '    from "img%d" arg="BASE"\n' "${deps[0]}"
      printf 'ARG BASE\nFROM ${BASE}\nCOPY app.txt /img%d.txt\n' "$i" > "img$i/Dockerfile"
      if [ "${#deps[@]}" -gt 1 ]; then
        line='    after'
        for j in "${deps[@]:1}"; do line+=" \"img$j\""; done
        printf '%s\n' "$line"
      fi
    else
      printf 'FROM scratch\nCOPY app.txt /img%d.txt\n' "$i" > "img$i/Dockerfile"
    fi
    printf '}\n'
  } >> hephy.kdl
  for p in amd64 arm64; do
    printf 'build stamps/img%d.%s: stamp img%d/Dockerfile img%d/app.txt' "$i" "$p" "$i" "$i"
    [ "${#deps[@]}" -gt 0 ] && printf ' stamps/img%d.'"$p" "${deps[@]}"
    printf '\n'
  done >> build.ninja
  printf 'build stamps/img%d.index: stamp stamps/img%d.amd64 stamps/img%d.arm64\n' "$i" "$i" "$i" >> build.ninja
done
leaf="img$((n - 1))/app.txt"
echo "graph: $n images × 2 platforms, $(wc -l < hephy.kdl) lines of KDL; ninja: $((3 * n)) edges"
mkdir -p stamps
ninja > /dev/null
start=$(date +%s)
"$hephy" run -q > /dev/null
echo "setup: the first hephy run (the built-in oci builder) took $(( $(date +%s) - start )) s"

ms() { echo "scale=1; ($2 - $1) / 1000000" | bc; }
best() { printf '%s\n' "$@" | sort -n | head -1; }
change() { printf '.' >> "$leaf"; }

ninja_times=()
for _ in $(seq "$rounds"); do
  change
  t0=$(date +%s%N); ninja -n > /dev/null; t1=$(date +%s%N)
  ninja > /dev/null
  ninja_times+=("$(ms "$t0" "$t1")")
done
ninja_best=$(best "${ninja_times[@]}")
echo "ninja -n after touching $leaf: best $ninja_best ms"

measure() {
  local bin=$1 name=$2 times=()
  for _ in $(seq "$rounds"); do
    change
    sleep 2.1 # out of the racy window: what was just saved is not trusted by stat alone
    "$bin" run -q > /dev/null
    change
    t0=$(date +%s%N); "$bin" plan > /dev/null; t1=$(date +%s%N)
    times+=("$(ms "$t0" "$t1")")
  done
  local b
  b=$(best "${times[@]}")
  echo "$name: hephy plan after run + one leaf file changed: best $b ms = $(echo "scale=2; $b / $ninja_best" | bc)× ninja -n (goal ≤ 2.0×); rounds: ${times[*]}"
  HEPHY_TIMINGS=1 "$bin" plan 2>&1 > /dev/null | sed "s/^/  $name /"
}
[ -n "${BEFORE:-}" ] && measure "$BEFORE" before
measure "$hephy" after
[ -n "${BEFORE:-}" ] && measure "$BEFORE" before
exit 0
