#!/usr/bin/env bash
# Limits that hold across the cluster, on a three-node lab that replicates every kind: each
# node's MTA speaks to its own dvipd through the local API (redis-cli here), the counts and
# a throttle's hits are the cluster's, the console shows them, and a node's death takes its
# open connections out of the count but not the hits it made.
# Usage (as root, after building): scripts/limits-demo.sh target/release
set -euo pipefail
bin=${1:-target/release}
dvip=$bin/dvip
lab="lim$$"
lab=${lab:0:12}
trap '"$dvip" lab down --name "$lab" 2>/dev/null || true' EXIT

"$dvip" lab up --name "$lab" --nodes 3 --addresses 3 --replication >/dev/null
dir=/var/lib/dvip-lab/$lab
api() { redis-cli -s "$dir/api-$1.sock" "${@:2}"; }
# Asks node $1 until the answer is $2 (within 5 s); prints how long it took.
until_says() {
  local node=$1 want=$2; shift 2
  local start; start=$(date +%s%N)
  for _ in $(seq 500); do
    [ "$(api "$node" "$@")" = "$want" ] && {
      echo "$(( ($(date +%s%N) - start) / 1000000 )) ms"
      return 0
    }
    sleep 0.01
  done
  echo "node$node still does not say $want" >&2
  return 1
}

echo "== a throttle of 5 bounces a minute for the whole cluster; node1's MTA uses 3:"
for _ in 1 2 3; do echo "  node1 THROTTLE bounces 5 60 -> $(api 1 THROTTLE bounces 5 60)"; done
echo "== node1's MTA opens 3 connections to example.com from binding 198.18.0.10 (group warm):"
for _ in 1 2 3; do echo "  node1 OUTBOUND.OPEN -> $(api 1 OUTBOUND.OPEN 198.18.0.10 example.com warm) open to example.com in the cluster"; done
echo "== node2's MTA asks the cluster's count for example.com until it is 3: $(until_says 2 3 DOMAIN.COUNT example.com)"
echo "   (a batch waits at most max_delay, 1 s, when nothing else fills it)"
echo "== node2's MTA bounces: the cluster has 2 left of its 5"
for _ in 1 2 3; do echo "  node2 THROTTLE bounces 5 60 -> $(api 2 THROTTLE bounces 5 60)"; done
echo "== dvip domains show and dvip throttle show on node3, once it has heard all 5 hits:"
for _ in $(seq 500); do
  "$dvip" throttle show --socket "$dir/node3.sock" | grep -Eq '^bounces +- +60 s +5 ' && break
  sleep 0.01
done
"$dvip" domains show --socket "$dir/node3.sock"
"$dvip" throttle show --socket "$dir/node3.sock"
echo
echo "== node1 dies: its open connections leave the count, its bounces still count"
"$dvip" lab kill node1 --name "$lab" >/dev/null
echo "  node2 DOMAIN.COUNT example.com -> 0 after $(until_says 2 0 DOMAIN.COUNT example.com)"
echo "  node3 THROTTLE bounces 5 60 -> $(api 3 THROTTLE bounces 5 60)"
"$dvip" lab down --name "$lab" >/dev/null
trap - EXIT
