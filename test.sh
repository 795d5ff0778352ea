#!/usr/bin/env bash
# Runs every test of the workspace after installing what the build needs.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh
dvip_setup
cargo test --workspace --locked
