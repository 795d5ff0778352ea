#!/usr/bin/env bash
# What the client's ARP prober costs a failover at large sizes: host deaths of the busiest node
# of a lab, alternately without and with `--measure`, timed from the survivors' own events
# (first `view` to last `acquire`), which need no prober. Root; a lab named `probecost`.
#   scripts/probe-cost.sh [ADDRESSES] [ROUNDS]     (default 10240 4; release build first)
set -euo pipefail
cd "$(dirname "$0")/.."
addresses="${1:-10240}"
rounds="${2:-4}"
dvip=target/release/dvip
out=$(mktemp -d /tmp/probe-cost.XXXXXX)
lab() { "$dvip" lab --name probecost "$@"; }
stream() { "$dvip" events --socket "/var/lib/dvip-lab/probecost/node$1.sock" >"$out/ev$1-$2.jsonl" 2>/dev/null & }
lab up --addresses "$addresses" >"$out/up.log" 2>&1
trap 'lab down >/dev/null 2>&1 || true' EXIT
for n in 1 2 3; do stream "$n" 0; done
sleep 1
for round in $(seq "$rounds"); do
  for mode in plain measure; do
    busiest=$(lab status --json | python3 -c 'import json,sys; print(max(json.load(sys.stdin)["nodes"], key=lambda n: n["held"])["node"])')
    flag=(); [ "$mode" = measure ] && flag=(--measure)
    echo "$round $mode $busiest $(date +%s%3N)" >>"$out/faults.txt"
    lab kill "$busiest" "${flag[@]}" >"$out/kill-$round-$mode.txt" 2>&1
    sleep 3
    lab start >/dev/null 2>&1
    stream "${busiest#node}" "$round$mode"
    sleep 2
  done
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
events = []
for path in glob.glob(f"{out}/ev*.jsonl"):
    node = "node" + path.rsplit("/ev", 1)[1][0]
    for line in open(path):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event.get("at_ms"), int):
            events.append((node, event))
took = {"plain": [], "measure": []}
for line in open(f"{out}/faults.txt"):
    _, mode, victim, t = line.split()
    # The survivors' events of this failover: before the node is started again.
    seen = [e for n, e in events if n != victim and int(t) <= e["at_ms"] <= int(t) + 3000]
    views = [e["at_ms"] for e in seen if e.get("event") == "view"]
    acquired = [e["at_ms"] for e in seen if e.get("event") == "acquire"]
    if views and acquired:
        took[mode].append(max(acquired) - min(views))
for mode, ms in took.items():
    label = "with the prober" if mode == "measure" else "without"
    print(f"{label:16} first view to last acquire: median {statistics.median(ms)} ms, runs {sorted(ms)}")
PY
echo "events and the kills' reports: $out"
