#!/usr/bin/env bash
# Whether host deaths split the survivors, with leases and pre-plumbing on, at a given
# corosync consensus: a lab kept up for DEATHS host deaths of its busiest node (each measured
# from the client, then the node started again), and after them, from the lab's own logs,
# how many times a survivor's corosync formed a ring of itself alone, how many times a
# dvipd's own lease lapsed, and each death's worst address and what went dark again.
# Root; a lab named `splits`.
#   scripts/lease-splits.sh [CONSENSUS_MS] [DEATHS] [ADDRESSES]
# Defaults 60 20 10240 (release build first). BENCHMARKS.md, "Twenty runs a row, and
# consensus 60 ms", has what 50 and 60 gave.
set -euo pipefail
cd "$(dirname "$0")/.."
consensus="${1:-60}"
deaths="${2:-20}"
addresses="${3:-10240}"
dvip=target/release/dvip
dir=/var/lib/dvip-lab/splits
out=$(mktemp -d /tmp/lease-splits.XXXXXX)
lab() { "$dvip" lab --name splits "$@"; }
lab up --nodes 3 --addresses "$addresses" --heartbeats 40 --pre-plumb --token 40 \
  --token-retransmits 1 --consensus "$consensus" >"$out/up.log" 2>&1
trap 'cp "$dir"/*.log "$out"/ 2>/dev/null || true; lab down >/dev/null 2>&1 || true' EXIT
for death in $(seq "$deaths"); do
  lab kill busiest --measure --json >"$out/death-$death.json"
  lab start >"$out/start-$death.log" 2>&1
  python3 - "$out/death-$death.json" "$death" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"death {sys.argv[2]}: {r['node']}, worst {r['worst_ms']} ms, "
      f"dark again {r['dark_again']}, moved again {r['handed_over_among_survivors']}")
EOF
done
# A ring alone on three nodes names both others as left.
alone=$(cat "$dir"/corosync-*.log | grep -c 'Members left: [0-9]* [0-9]*' || true)
lapses=$(cat "$dir"/dvipd-*.log | grep -c "this node's lease lapsed" || true)
echo "consensus $consensus ms, $deaths deaths: $alone rings of one survivor alone, $lapses lapses (the lab's start included)"
echo "logs and reports: $out"
