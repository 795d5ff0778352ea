#!/usr/bin/env bash
# The main job:
#  1. what dvip makes of an example configuration;
#  2. a three-node cluster (network namespaces, corosync and dvipd in each) holding twelve
#     addresses: who owns what, the node holding the most dies, the time until the survivors
#     hold everything, its return and the rebalance (scripts/cluster-demo.sh);
#  3. a killed dvipd's addresses going with it (the kernel keeps addresses after kill -9;
#     dvipd's guardian process removes them at once, and a short lifetime that only a live
#     daemon refreshes is the backstop);
#  4. clustered logging: a node's log collected over mutual TLS while lines keep coming, the
#     node killed in the middle and started again, and every line in the aggregated file
#     once (scripts/logs-demo.sh);
#  5. limits that hold across the cluster: each node's MTA counts connections and throttle
#     hits through its dvipd's local API, every node sees the cluster's counts, and a dead
#     node's open connections leave them while its hits stay (scripts/limits-demo.sh).
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
dvip_setup

cargo build --release --quiet -p dvip -p dvipd
dvip=target/release/dvip
dvipd=target/release/dvipd

echo "== 1. dvip config check --addresses examples/mta-3x.conf"
"$dvip" config check --addresses examples/mta-3x.conf 2>/dev/null
echo

echo "== 2. a cluster of three"
scripts/cluster-demo.sh target/release
echo

echo "== 3. a killed dvipd's addresses (one machine, standalone bus, in a namespace)"
ns="dvip-demo-$$"
dir=$(mktemp -d)
conf="$dir/dvip.conf"
socket="$dir/dvipd.sock"
cleanup() {
  [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
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
ip netns exec "$ns" "$dvipd" --config "$conf" --bus standalone --address-lifetime 3 --socket "$socket" --state-dir "$dir" 2>/dev/null &
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
echo "kill -9 $pid: the kernel would keep the addresses, but dvipd's guardian is watching..."
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
start=$(date +%s.%N)
# (Read the list first: with pipefail, `ip | grep -q` fails when grep stops reading early.)
while [[ "$(ip -n "$ns" -4 addr show dev dv0)" == *198.51.100.* ]]; do sleep 0.1; done
end=$(date +%s.%N)
gone=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", (e - s) * 1000 }')
echo "...and all of them were gone $gone ms after the kill (without the guardian, their 3 s"
echo "lifetime would have run out: nobody refreshes them any more)."
echo

echo "== 4. clustered logging: a node dies while its log is being collected"
scripts/logs-demo.sh target/release
echo

echo "== 5. limits shared by the cluster, through each node's local API (redis-cli)"
scripts/limits-demo.sh target/release
echo
echo "demo: done"
