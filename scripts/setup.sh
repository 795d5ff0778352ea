#!/usr/bin/env bash
# Installs what dvip needs on a Debian machine, once: the corosync libraries the daemon links
# against (and corosync itself, for the lab), a C toolchain and pkg-config (and, for the
# package, cargo-deb). Skips apt entirely
# when everything is already there. Sourced by demo.sh and test.sh; run as root.
set -euo pipefail

DVIP_APT_PACKAGES=(
  build-essential pkg-config iproute2 procps util-linux systemd keepalived nftables python3-pip openssl postfix redis-tools
  corosync libcorosync-common-dev libcpg-dev libcfg-dev libcmap-dev libquorum-dev libvotequorum-dev
)

dvip_setup() {
  local missing=()
  for p in "${DVIP_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
      echo "dvip setup: missing packages: ${missing[*]}; run as root (sudo) so they can be installed" >&2
      exit 1
    fi
    echo "dvip setup: installing ${missing[*]}" >&2
    apt-get update -q
    # corosync must not start a system instance here: the lab runs its own per namespace.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null || {
    echo "dvip setup: cargo (Rust 1.85 or newer, the workspace's rust-version) is required; install it with rustup" >&2
    exit 1
  }
}

# The cargo-deb that packaging/deb.sh is written against.
DVIP_CARGO_DEB_VERSION=3.8.0

# Installs cargo-deb for packaging/deb.sh unless this version is there.
dvip_setup_packaging() {
  if ! cargo deb --version 2>/dev/null | grep -q "$DVIP_CARGO_DEB_VERSION"; then
    echo "dvip setup: installing cargo-deb $DVIP_CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --version "$DVIP_CARGO_DEB_VERSION" --locked
  fi
}
