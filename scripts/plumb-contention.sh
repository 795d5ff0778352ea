#!/usr/bin/env bash
# What the lab's one kernel costs a failover: adding N addresses in one network namespace
# alone, then in two namespaces at once (two survivors of a host death, each plumbing its
# share). Separate hosts would plumb at once; in the lab both wait for the kernel's one lock
# for address changes. Prints the medians and their ratio.
# Root; namespaces dvpc-a and dvpc-b, removed at the end.
#   scripts/plumb-contention.sh [ADDRESSES] [ROUNDS]
# Default 1707 10: each survivor's share when one of three nodes holding 10,240 dies.
set -euo pipefail
addresses="${1:-1707}"
rounds="${2:-10}"
work=$(mktemp -d /tmp/plumb-contention.XXXXXX)
cleanup() {
  ip netns del dvpc-a 2>/dev/null || true
  ip netns del dvpc-b 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# Like dvipd at 10,240 addresses: 40 holder interfaces, each survivor already holding its own
# share (HELD addresses) when it takes its share of the dead node's.
holders=40
held=$(( addresses * 2 ))
for ns in a b; do
  ip netns add "dvpc-$ns"
  for h in $(seq 0 $((holders - 1))); do
    # dvipd's own choice: a dummy, or an ifb where the kernel has no dummy driver.
    ip -n "dvpc-$ns" link add "hold$h" type dummy 2>/dev/null ||
      ip -n "dvpc-$ns" link add "hold$h" type ifb
    ip -n "dvpc-$ns" link set "hold$h" up
  done
done
# 198.18.0.0/15 holds 131,072 addresses: the first HELD are held, the next ADDRESSES taken.
python3 - "$addresses" "$held" "$holders" "$work" <<'PY'
import ipaddress, sys
work = sys.argv[4]
n, held, holders = (int(a) for a in sys.argv[1:4])
base = int(ipaddress.IPv4Address("198.18.0.1"))
def lines(verb, first, count):
    return "".join(
        f"address {verb} {ipaddress.IPv4Address(base + i)}/32 dev hold{i % holders}\n"
        for i in range(first, first + count))
open(f"{work}/held", "w").write(lines("add", 0, held))
open(f"{work}/add", "w").write(lines("add", held, n))
open(f"{work}/del", "w").write(lines("del", held, n))
PY
for ns in a b; do ip -n "dvpc-$ns" -batch "$work/held"; done
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
alone=()
together=()
for _ in $(seq "$rounds"); do
  t=$(date +%s%N)
  ip -n dvpc-a -batch "$work/add"
  alone+=("$(ms "$t")")
  ip -n dvpc-a -batch "$work/del"
  t=$(date +%s%N)
  ip -n dvpc-a -batch "$work/add" &
  a=$!
  ip -n dvpc-b -batch "$work/add" &
  b=$!
  wait "$a" "$b"
  together+=("$(ms "$t")")
  ip -n dvpc-a -batch "$work/del"
  ip -n dvpc-b -batch "$work/del"
done
python3 - "$addresses" "${alone[*]}" "${together[*]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
alone = [int(x) for x in sys.argv[2].split()]
together = [int(x) for x in sys.argv[3].split()]
a, t = statistics.median(alone), statistics.median(together)
print(f"{n} addresses, {len(alone)} rounds")
print(f"one namespace alone:       median {a} ms  {alone}")
print(f"two namespaces at once:    median {t} ms  {together}")
print(f"ratio: {t / a:.2f}")
PY
