#!/usr/bin/env bash
# The main job. Today: build dvip and check the example configurations of both dialects,
# showing the model dvip makes of them and what an operator sees for a broken file.
# (The cluster failover demo replaces this once the daemon runs on corosync.)
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
dvip_setup

cargo build --release --quiet -p dvip
dvip=target/release/dvip

for conf in examples/*.conf; do
  echo "== dvip config check --addresses $conf"
  "$dvip" config check --addresses "$conf"
  echo
done

echo "== a broken configuration: every error at once, located, with a hint"
if "$dvip" config check crates/dvip-config/testdata/invalid/follow-conflict.conf; then
  echo "demo: expected the broken configuration to be refused" >&2
  exit 1
fi
echo
echo "demo: done"
