#!/usr/bin/env bash
# Runs every test of the workspace after installing what the build needs, builds and checks
# the Debian package, runs the demo's logging part, then a short chaos run on a lab cluster
# (DVIP_CHAOS_SECONDS, 0 to skip; DVIP_CHAOS_SEED).
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
dvip_setup
# jlog's own library, the oracle the journal tests check dvip's journals against.
scripts/jlog-oracle.sh >/dev/null
cargo test --workspace --locked
# The Debian package, from the test build's binaries: what it holds, and that they run.
dvip_setup_packaging
packaging/deb.sh --profile dev
packaging/check-deb.sh
# The README demo's last part, on the test build: a node killed while its log is collected,
# every line in the aggregated file once.
scripts/logs-demo.sh target/debug
seconds="${DVIP_CHAOS_SECONDS:-150}"
if [ "$seconds" -gt 0 ]; then
  # The binaries the tests just built: dvip runs the lab, the dvipd next to it runs on each node.
  target/debug/dvip lab --name testchaos chaos --seed "${DVIP_CHAOS_SEED:-1}" --duration "$seconds"
fi
