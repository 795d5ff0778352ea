#!/usr/bin/env bash
# Clustered logging, as the demo shows it: a node's log is collected over the log service
# while lines keep coming, the node dies in the middle and comes back, and the aggregated
# file ends with every line once, in order. One node (dvipd, standalone bus) and one
# aggregator (dvip collect) in a network namespace of their own, with certificates made by
# dvip tls. Usage: scripts/logs-demo.sh DIR_OF_BINARIES (target/release). Root required.
set -euo pipefail
bin=${1:-target/release}
dvip="$bin/dvip"
dvipd="$bin/dvipd"
ns="dvip-logs-$$"
dir=$(mktemp -d)
node_pid=
collect_pid=
writer_pid=
cleanup() {
  for pid in "$writer_pid" "$collect_pid" "$node_pid"; do
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

"$dvip" tls init --dir "$dir/tls" --cluster demo >/dev/null
"$dvip" tls issue node1 --dir "$dir/tls" >/dev/null
"$dvip" tls issue collector --dir "$dir/tls" >/dev/null
echo "certificates: a cluster CA, node1's and the aggregator's (dvip tls init, dvip tls issue)"

cat > "$dir/node.conf" <<CONF
cluster {
  nodename = node1
  cluster_listener = "127.0.0.1:4802"
  logs = [ maillog = "$dir/maillog.cluster" ]
}
CONF
cat > "$dir/collect.conf" <<CONF
Logs {
  logfile = "$dir/out/%{l}/%{n}"
  state_dir = "$dir/collect-state"
  tls_dir = "$dir/tls"
  Manager "collector" {
    Node "node1" { address = "127.0.0.1:4802" }
  }
}
CONF

start_node() {
  ip netns exec "$ns" "$dvipd" --bus standalone --config "$dir/node.conf" \
    --socket "$dir/node.sock" --state-dir "$dir/node-state" --tls-dir "$dir/tls" \
    2>>"$dir/node.log" &
  node_pid=$!
}
lines() { [ -f "$dir/out/maillog/node1" ] && wc -l < "$dir/out/maillog/node1" || echo 0; }
wait_lines() { # at least $1 lines, within $2 seconds
  local deadline=$((SECONDS + $2))
  while [ "$(lines)" -lt "$1" ]; do
    if [ $SECONDS -ge $deadline ]; then
      echo "the aggregated file has $(lines) lines, not $1, after $2 s" >&2
      tail -5 "$dir/collect.log" >&2
      exit 1
    fi
    sleep 0.05
  done
}

total=30000
# The MTA's side: delivery lines into node1's journal (subscriber `collector`), 30,000 at
# about 5,000 a second, while everything below happens.
python3 -c "
import sys, time
for i in range(1, $total + 1):
    print(f'delivery {i:05d} to=<user{i}@example.net> status=sent')
    if i % 50 == 0:
        sys.stdout.flush(); time.sleep(0.01)
" | "$dvip" log write "cluster://$dir/maillog.cluster=>collector" &
writer_pid=$!
start_node
ip netns exec "$ns" "$dvip" collect --config "$dir/collect.conf" 2>>"$dir/collect.log" &
collect_pid=$!
echo "node1 serves its log on 127.0.0.1:4802; dvip collect pulls it over mutual TLS"

wait_lines 5000 30
echo "node1 dies (kill -9) with $(lines) lines collected so far; lines keep coming into its journal"
kill -9 "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=
sleep 1
ip netns exec "$ns" "$dvip" collect status --config "$dir/collect.conf" | sed 's/^/  /' || true
start_node
echo "node1 is back; the aggregator reconnects and replays from its checkpoint"
wait "$writer_pid"; writer_pid=
wait_lines "$total" 60
# The node's word on the backlog comes every 2 s: wait for the one that says caught up.
for _ in $(seq 100); do
  status=$(ip netns exec "$ns" "$dvip" collect status --json --config "$dir/collect.conf" || true)
  [[ "$status" == *'"lag_records": 0,'* ]] && break
  sleep 0.1
done
ip netns exec "$ns" "$dvip" collect status --config "$dir/collect.conf" | sed 's/^/  /'

if diff -q <(python3 -c "
for i in range(1, $total + 1):
    print(f'delivery {i:05d} to=<user{i}@example.net> status=sent')
") "$dir/out/maillog/node1" >/dev/null; then
  echo "the aggregated file holds every one of the $total lines once, in order"
else
  echo "the aggregated file differs from what was written" >&2
  exit 1
fi
