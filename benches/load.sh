#!/usr/bin/env bash
# Load: `hephy run --jobs 16` over a 5,000-node task graph (each task `true`, each after two
# earlier ones), with its peak memory (GNU time), its most open file descriptors (sampled from
# /proc every 20 ms), and what hephy adds per node. Each task is after the one before it, so the
# graph runs one task at a time whatever --jobs says: the peer runs the same 5,000 processes one
# after another from the shell. Then the exit latency of a chain of short tasks.
# Usage: benches/load.sh [NODES] (after `cargo build --release`; HEPHY=path picks another binary).
set -euo pipefail
nodes=${1:-5000}
hephy="${HEPHY:-$(cd "$(dirname "$0")/.." && pwd)/target/release/hephy}"
[ -x "$hephy" ] || { echo "build first: cargo build --release"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
{
  for i in $(seq 0 $((nodes - 1))); do
    printf 'task "t%d" {\n    run "true"\n' "$i"
    if [ "$i" -ge 2 ]; then printf '    after "t%d" "t%d"\n' $(( (i * 7919) % i )) $(( i - 1 )); fi
    printf '}\n'
  done
} > hephy.kdl
"$hephy" check >/dev/null
"$hephy" run -j 16 --format json > run.json 2> /dev/null &
pid=$!
max_fds=0
while kill -0 "$pid" 2>/dev/null; do
  n=$( (ls /proc/"$pid"/fd 2>/dev/null || true) | wc -l)
  [ "$n" -gt "$max_fds" ] && max_fds=$n
  sleep 0.02
done
wait "$pid"
rm -rf .hephy
/usr/bin/time -f '%e %M' -o time.txt "$hephy" run -j 16 --format json > run.json 2>/dev/null
read -r wall rss < time.txt
built=$(grep -o '"built": [0-9]*' run.json | grep -o '[0-9]*$')
true=$(type -P true)
start=$(date +%s.%N)
for _ in $(seq "$nodes"); do "$true"; done
peer=$(echo "$(date +%s.%N) - $start" | bc)
shell_true=$peer
printf 'nodes %d (built %s), --jobs 16\n' "$nodes" "$built"
printf 'hephy run: %.2f s wall, peak RSS %.1f MiB, most open fds %d\n' "$wall" "$(echo "$rss / 1024" | bc -l)" "$max_fds"
printf 'the shell, the same processes one after another: %.2f s\n' "$peer"
printf 'what hephy adds per node: %.2f ms\n' "$(echo "($wall - $peer) * 1000 / $nodes" | bc -l)"

# Exit latency: a chain of 50 tasks of `sleep 0.021` (each after the one before), against the
# same sleeps one after another in the shell. What a node adds beyond its command: spawning,
# noticing its exit, recording it.
mkdir chain && cd chain
for i in $(seq 0 49); do
  printf 'task "s%d" {\n    run "sleep" "0.021"\n' "$i"
  if [ "$i" -ge 1 ]; then printf '    after "s%d"\n' $((i - 1)); fi
  printf '}\n'
done > hephy.kdl
start=$(date +%s.%N)
"$hephy" run --format json > /dev/null 2>&1
chain=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
for i in $(seq 50); do sleep 0.021; done
peer=$(echo "$(date +%s.%N) - $start" | bc)
printf 'chain of 50 x sleep 0.021: hephy %.2f s, shell %.2f s, %.2f ms per node\n' "$chain" "$peer" \
  "$(echo "($chain - $peer) * 1000 / 50" | bc -l)"

# Wide: NODES independent tasks for one executor with one slot, under --jobs 4: thousands wait
# for that slot at once, and what hephy adds per node should not grow with how many wait.
mkdir ../wide && cd ../wide
{
  printf 'executor "arm" platform="linux/arm64" jobs=1\n'
  for i in $(seq 0 $((nodes - 1))); do
    printf 'task "w%d" {\n    run "true"\n    platforms "linux/arm64"\n}\n' "$i"
  done
} > hephy.kdl
/usr/bin/time -f '%e %U' -o time.txt "$hephy" run -j 4 --format json > run.json 2>/dev/null
read -r wall user < time.txt
printf 'wide, %d tasks for a one-slot executor: %.2f s wall (%.2f s user), %.2f ms per node beyond the shell\n' \
  "$nodes" "$wall" "$user" "$(echo "($wall - $shell_true) * 1000 / $nodes" | bc -l)"

