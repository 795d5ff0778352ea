#!/usr/bin/env bash
# A three-node dvip cluster on one machine: network namespaces on a bridge (itself in a
# namespace), corosync and dvipd in each, twelve DuraVIP addresses from 198.51.100.0/24.
# Shows who owns what, kills the node holding the most (its link cut, then its corosync and
# dvipd killed, as if the host died), measures how long until the survivors hold every
# address, brings the node back and shows the rebalance. Removes everything it made.
# Usage (as root, after building): scripts/cluster-demo.sh target/release
set -euo pipefail
bin=${1:-target/release}
dvip=$bin/dvip
dvipd=$bin/dvipd
p="dvd$$"
dir=$(mktemp -d)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for i in 1 2 3; do ip netns del "${p}n$i" 2>/dev/null || true; done
  ip netns del "${p}sw" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

ip netns add "${p}sw"
ip -n "${p}sw" link add br0 type bridge
ip -n "${p}sw" link set br0 up
nodelist=""
for i in 1 2 3; do
  nodelist+="  node {
    nodeid: $i
    name: node$i
    ring0_addr: 198.51.100.$i
  }
"
done
for i in 1 2 3; do
  ns="${p}n$i"
  ip netns add "$ns"
  ip -n "${p}sw" link add "p$i" type veth peer name eth0 netns "$ns"
  ip -n "${p}sw" link set "p$i" master br0 up
  ip -n "$ns" addr add "198.51.100.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  cat > "$dir/corosync-$i.conf" <<CONF
totem {
  version: 2
  cluster_name: dvipdemo
  transport: knet
  crypto_cipher: none
  crypto_hash: none
  token: 100
  consensus: 150
  token_coefficient: 0
  token_retransmits_before_loss_const: 3
  interface {
    linknumber: 0
    knet_ping_interval: 200
    knet_ping_timeout: 600
  }
}
nodelist {
$nodelist}
quorum {
  provider: corosync_votequorum
}
logging {
  to_stderr: yes
  to_syslog: no
}
CONF
  {
    echo "cluster { nodename = node$i  Topology \"198.51.100.0/24\" { interface = \"eth0\" } }"
    for a in $(seq 11 22); do
      echo "Binding \"sender-$a\" { Enable_Duravip = true  Bind_Address = 198.51.100.$a }"
    done
  } > "$dir/dvip-$i.conf"
done

start_corosync() {
  ip netns exec "${p}n$1" unshare -m sh -c \
    "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib/corosync && exec corosync -f -c $dir/corosync-$1.conf" \
    > "$dir/corosync-$1.log" 2>&1 &
  pids+=($!)
  corosync_pid[$1]=$!
  disown $!  # killed on purpose later: no job notices
}
start_dvipd() {
  ip netns exec "${p}n$1" "$dvipd" --config "$dir/dvip-$1.conf" --socket "$dir/dvipd-$1.sock" \
    --address-lifetime 3 > "$dir/dvipd-$1.log" 2>&1 &
  pids+=($!)
  dvipd_pid[$1]=$!
  disown $!
}
held() { ip -n "${p}n$1" -4 -o addr show dev eth0 | awk '$4 ~ /\/32$/ { n++ } END { print n + 0 }'; }
wait_until() { # wait_until SECONDS COMMAND...: poll until COMMAND succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    if ((SECONDS >= deadline)); then echo "demo: timed out waiting for: $*" >&2; tail -5 "$dir"/*.log >&2; exit 1; fi
    sleep 0.05
  done
}
ring_of() { [ "$(ip netns exec "${p}n1" corosync-cmapctl runtime.members 2>/dev/null | grep -c 'status (str) = joined')" -eq "$1" ]; }
balanced() { [ "$(held 1)" -eq 4 ] && [ "$(held 2)" -eq 4 ] && [ "$(held 3)" -eq 4 ]; }

declare -a corosync_pid dvipd_pid
for i in 1 2 3; do start_corosync "$i"; done
wait_until 20 ring_of 3
for i in 1 2 3; do start_dvipd "$i"; done
wait_until 20 balanced
echo "== three nodes, twelve sending addresses, as node1 sees them (dvip show):"
"$dvip" show --socket "$dir/dvipd-1.sock"
echo

victim=1
for i in 2 3; do [ "$(held "$i")" -gt "$(held "$victim")" ] && victim=$i; done
survivors=(); for i in 1 2 3; do [ "$i" -ne "$victim" ] && survivors+=("$i"); done
all_on_survivors() { [ $(( $(held "${survivors[0]}") + $(held "${survivors[1]}") )) -eq 12 ]; }
echo "== node$victim dies: its link is cut, then its corosync and dvipd are killed"
start=$(date +%s%N)
ip -n "${p}sw" link set "p$victim" down
wait_until 10 all_on_survivors
end=$(date +%s%N)
kill -9 "${corosync_pid[$victim]}" "${dvipd_pid[$victim]}" 2>/dev/null || true
echo "the survivors held every address $(( (end - start) / 1000000 )) ms after the link was cut"
echo "(corosync's failure detection is most of it: token 100 ms, consensus 150 ms)"
"$dvip" show --socket "$dir/dvipd-${survivors[0]}.sock"
echo

echo "== node$victim comes back: link up, corosync and dvipd started again"
ip -n "${p}sw" link set "p$victim" up
start_corosync "$victim"
wait_until 20 ring_of 3
start_dvipd "$victim"
wait_until 20 balanced
echo "after the view matured (1 s), node$victim took its share back:"
"$dvip" show --socket "$dir/dvipd-1.sock"
