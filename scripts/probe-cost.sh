#!/usr/bin/env bash
# What the client's ARP prober costs a failover: faults of the busiest node of a lab,
# alternately without and with `--measure`, timed from the survivors' own events (from the
# fault, and from their first `view`, to their last `acquire`), which need no prober.
# Root; a lab named `probecost`.
#   scripts/probe-cost.sh [ADDRESSES] [ROUNDS] [FAULT]
# FAULT is host, daemon, corosync or stop (default 10240 4 host; release build first).
set -euo pipefail
cd "$(dirname "$0")/.."
addresses="${1:-10240}"
rounds="${2:-4}"
fault="${3:-host}"
case "$fault" in
  host) how=() ;;
  daemon | corosync | stop) how=("--$fault") ;;
  *) echo "probe-cost: FAULT must be host, daemon, corosync or stop, not '$fault'" >&2; exit 2 ;;
esac
dvip=target/release/dvip
out=$(mktemp -d /tmp/probe-cost.XXXXXX)
lab() { "$dvip" lab --name probecost "$@"; }
stream() { "$dvip" events --json --socket "/var/lib/dvip-lab/probecost/node$1.sock" >"$out/ev$1-$2.jsonl" 2>/dev/null & }
lab up --addresses "$addresses" >"$out/up.log" 2>&1
trap 'lab down >/dev/null 2>&1 || true' EXIT
for n in 1 2 3; do stream "$n" 0; done
sleep 1
for round in $(seq "$rounds"); do
  for mode in plain measure; do
    busiest=$(lab status --json | python3 -c 'import json,sys; print(max(json.load(sys.stdin)["nodes"], key=lambda n: n["held"])["node"])')
    flag=(); [ "$mode" = measure ] && flag=(--measure)
    lab kill "$busiest" "${how[@]}" "${flag[@]}" --json >"$out/kill-$round-$mode.json"
    at=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["fault_at_ms"])' <"$out/kill-$round-$mode.json")
    echo "$round $mode $busiest $at" >>"$out/faults.txt"
    sleep 3
    lab start >/dev/null 2>&1
    stream "${busiest#node}" "$round$mode"
    sleep 2
  done
done
python3 - "$out" "$fault" <<'PY'
import glob, json, statistics, sys
out, fault = sys.argv[1], sys.argv[2]
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
after_fault = {"plain": [], "measure": []}
for line in open(f"{out}/faults.txt"):
    _, mode, victim, t = line.split()
    # The survivors' events of this failover: before the node is started again.
    seen = [e for n, e in events if n != victim and int(t) <= e["at_ms"] <= int(t) + 3000]
    views = [e["at_ms"] for e in seen if e.get("event") == "view"]
    acquired = [e["at_ms"] for e in seen if e.get("event") == "acquire"]
    if acquired:
        after_fault[mode].append(max(acquired) - int(t))
    # A clean stop hands over before it leaves: its view comes after the acquisitions.
    if views and acquired and fault != "stop":
        took[mode].append(max(acquired) - min(views))
for mode in took:
    label = "with the prober" if mode == "measure" else "without"
    for what, ms in (("fault", after_fault[mode]), ("first view", took[mode])):
        if ms:
            print(f"{label:16} {what:>10} to last acquire: median {statistics.median(ms)} ms, runs {sorted(ms)}")
PY
echo "events and the kills' reports: $out"
