#!/usr/bin/env bash
# The main job, as far as dvip goes today:
#  1. what dvip makes of the example configurations of both dialects;
#  2. the election a three-node cluster runs, and what happens when one node dies
#     (offline, with `dvip plan`: the same election code the daemons run);
#  3. a real dvipd on a single machine (standalone bus) inside a network namespace: it plumbs
#     its addresses with a lifetime, and after `kill -9` they expire by themselves.
# (The corosync cluster demo with measured failover replaces part 3 once the bus exists.)
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
dvip_setup

cargo build --release --quiet -p dvip -p dvipd
dvip=target/release/dvip
dvipd=target/release/dvipd

echo "== 1. dvip config check --addresses examples/mta-3x.conf"
"$dvip" config check --addresses examples/mta-3x.conf 2>/dev/null
"$dvip" config check examples/mta-2x.conf 2>/dev/null
echo

echo "== 2. three nodes running examples/mta-3x.conf settle on:"
nodes=(--node node1=examples/mta-3x.conf --node node2=examples/mta-3x.conf --node node3=examples/mta-3x.conf)
plan=$("$dvip" plan "${nodes[@]}")
echo "$plan"
echo
victim=node3
holds=()
for n in node1 node2; do
  list=$(echo "$plan" | awk -v n="$n" '$2 == n { printf "%s%s", sep, $1; sep = "," }')
  [ -n "$list" ] && holds+=(--holds "$n=$list")
done
echo "== 2b. $victim dies; node1 and node2 keep what they hold and take over at once:"
"$dvip" plan --node node1=examples/mta-3x.conf --node node2=examples/mta-3x.conf "${holds[@]}"
echo

echo "== 3. dvipd on one machine (a network namespace with addresses from 198.51.100.0/24)"
ns="dvip-demo-$$"
conf=$(mktemp --suffix=.conf)
socket="${conf%.conf}.sock"
cleanup() {
  [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -f "$conf" "$socket"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add dv0 type veth peer name dv1
ip -n "$ns" link set dv0 up
ip -n "$ns" link set dv1 up
cat > "$conf" <<'CONF'
cluster { nodename = solo  Topology "198.51.100.0/24" { interface = "dv0" } }
Binding "acme-1" { Enable_Duravip = true  Bind_Address = 198.51.100.11 }
Binding "acme-2" { Enable_Duravip = true  Bind_Address = 198.51.100.12 }
ESMTP_Listener { Listen "198.51.100.13:25" { Enable_Duravip = true } }
CONF
ip netns exec "$ns" "$dvipd" --config "$conf" --bus standalone --address-lifetime 3 --socket "$socket" 2>/dev/null &
pid=$!
for _ in $(seq 50); do
  [[ "$(ip -n "$ns" -4 addr show dev dv0)" == *198.51.100.13* ]] && break
  sleep 0.1
done
echo "dvip show (the console, over dvipd's socket):"
"$dvip" show --socket "$socket"
echo
echo "dvipd (pid $pid) plumbed, each with a 3 s lifetime it keeps refreshing:"
ip -n "$ns" -4 addr show dev dv0 | grep -E 'inet|valid_lft'
echo
echo "kill -9 $pid: the kernel keeps the addresses, but nobody refreshes them any more..."
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
start=$(date +%s.%N)
# (Read the list first: with pipefail, `ip | grep -q` fails when grep stops reading early.)
while [[ "$(ip -n "$ns" -4 addr show dev dv0)" == *198.51.100.* ]]; do sleep 0.1; done
end=$(date +%s.%N)
gone=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')
echo "...and all of them were gone $gone s after the kill, by themselves."
echo
echo "demo: done"
