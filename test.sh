#!/usr/bin/env bash
# Runs every test of the workspace after installing what the build needs, then a short chaos
# run on a lab cluster (DVIP_CHAOS_SECONDS, 0 to skip; DVIP_CHAOS_SEED).
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
dvip_setup
cargo test --workspace --locked
seconds="${DVIP_CHAOS_SECONDS:-150}"
if [ "$seconds" -gt 0 ]; then
  # The binaries the tests just built: dvip runs the lab, the dvipd next to it runs on each node.
  target/debug/dvip lab --name testchaos chaos --seed "${DVIP_CHAOS_SEED:-1}" --duration "$seconds"
fi
