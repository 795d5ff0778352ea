#!/bin/bash
# How precisely the kernel can end an owner's lease with no process running (docs/leases.md):
# an nftables netdev egress chain drops the ARP and IP answers of held addresses unless a set
# element renewed by a datagram is still alive. The owner renews every 5 ms for a while and
# stops; a client on the link pings the held address every 2 ms. Prints, per round, how long
# after the last renewal the last answer came. Root; two namespaces of its own, removed at
# the end. Usage: scripts/lease-enforcement.sh [ROUNDS] [TIMEOUT_MS]
set -euo pipefail
rounds=${1:-5}
timeout_ms=${2:-12}
owner=dvle-owner-$$
client=dvle-client-$$
work=$(mktemp -d)
cleanup() {
    ip netns del "$owner" 2>/dev/null || true
    ip netns del "$client" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$owner"
ip netns add "$client"
ip link add le0 netns "$owner" type veth peer name le1 netns "$client"
ip -n "$owner" link set lo up
ip -n "$owner" link set le0 up
ip -n "$owner" addr add 198.51.100.201/24 dev le0
ip -n "$owner" addr add 198.51.100.202/32 dev lo
ip -n "$client" link set lo up
ip -n "$client" link set le1 up
ip -n "$client" addr add 198.51.100.203/24 dev le1
# The renewals go to an address nobody has: a static neighbour lets them reach the egress
# hook, which drops them there.
ip -n "$owner" neigh add 198.51.100.250 lladdr 02:00:00:00:00:fa dev le0 nud permanent
cat > "$work/lease.nft" <<EOF
table netdev dvip_lease {
  set lease { type ifname; flags timeout; }
  set held { type ipv4_addr; elements = { 198.51.100.202 } }
  chain out {
    type filter hook egress device "le0" priority 0;
    ip daddr 198.51.100.250 udp dport 5410 update @lease { meta oifname timeout ${timeout_ms}ms } drop
    meta oifname != @lease arp saddr ip @held drop
    meta oifname != @lease ip saddr @held drop
  }
}
EOF
ip netns exec "$owner" nft -f "$work/lease.nft"

cat > "$work/renew.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + float(sys.argv[1])
last = 0.0
while time.time() < end:
    s.sendto(b"renew", ("198.51.100.250", 5410))
    last = time.time()
    time.sleep(0.005)
print("%.6f" % last)
EOF
cat > "$work/probe.py" <<'EOF'
import select, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def checksum(b):
    total = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
end = time.time() + float(sys.argv[1])
seq, last = 0, 0.0
while time.time() < end:
    seq = (seq + 1) & 0xFFFF
    body = struct.pack("!BBHHH", 8, 0, 0, 4242, seq) + b"lease..."
    s.sendto(body[:2] + struct.pack("!H", checksum(body)) + body[4:], (sys.argv[2], 0))
    sent = time.time()
    while time.time() - sent < 0.002:
        if select.select([s], [], [], 0.002)[0]:
            reply = s.recv(256)
            if reply[20] == 0:
                last = time.time()
print("%.6f" % last)
EOF

echo "nft timeout ${timeout_ms} ms; renewals every 5 ms; the client pings every 2 ms"
for round in $(seq 1 "$rounds"); do
    ip netns exec "$client" python3 "$work/probe.py" 2.0 198.51.100.202 > "$work/probe.out" &
    probe=$!
    sleep 0.2
    renewed=$(ip netns exec "$owner" python3 "$work/renew.py" 1.2)
    wait "$probe"
    answered=$(cat "$work/probe.out")
    python3 -c "
renewed, answered = $renewed, $answered
if answered == 0:
    print('round $round: never answered')
else:
    print('round $round: last answer %.1f ms after the last renewal' % ((answered - renewed) * 1000))
"
done
