#!/usr/bin/env bash
# A three-node dvip cluster on one machine, built with `dvip lab`: network namespaces on a
# bridge, corosync and dvipd in each node, a client on the same LAN, twelve DuraVIP addresses.
# Shows who owns what, kills the node holding the most (its link cut, then its corosync and
# dvipd killed, as if the host died), measures from the client how long until a survivor
# answers ARP for each of its addresses, brings the node back and shows the rebalance, and
# removes everything it made.
# Usage (as root, after building): scripts/cluster-demo.sh target/release
set -euo pipefail
bin=${1:-target/release}
dvip=$bin/dvip
lab="demo$$"
lab=${lab:0:12}
trap '"$dvip" lab down --name "$lab" 2>/dev/null || true' EXIT

"$dvip" lab up --name "$lab" --nodes 3 --addresses 12
echo
socket() { echo "/var/lib/dvip-lab/$lab/node$1.sock"; }
echo "== who owns what, as node1 sees it (dvip show):"
"$dvip" show --socket "$(socket 1)"
echo

echo "== the node holding the most addresses dies: its link is cut, then its corosync and dvipd are killed"
report=$("$dvip" lab kill busiest --name "$lab" --measure)
echo "$report"
echo "(most of it is corosync noticing: token 100 ms, consensus 150 ms, knet pings 200/600 ms)"
victim=${report%% *}
survivor=1; [ "$victim" = node1 ] && survivor=2
echo "dvip show on node$survivor:"
"$dvip" show --socket "$(socket $survivor)"
echo

echo "== $victim comes back: link up, corosync and dvipd started again"
"$dvip" lab start --name "$lab"
echo "after the view matured (1 s), $victim took its share back:"
"$dvip" show --socket "$(socket 1)"
echo
"$dvip" lab down --name "$lab"
trap - EXIT
