#!/usr/bin/env bash
# Builds the Debian package: target/debian/dvip_VERSION-1_ARCH.deb.
#
#   packaging/deb.sh                   # release binaries (what to install)
#   packaging/deb.sh --profile dev     # the test build's binaries, for checking the package
#
# Needs cargo-deb (`cargo install cargo-deb --locked`; scripts/setup.sh does it). The package
# holds dvip and dvipd in /usr/sbin, the systemd unit, /etc/dvip/dvip.conf, examples (a
# corosync.conf with crypto on, a hook, both configuration dialects), the docs, man pages
# and shell completions.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [ "${1:-}" = "--profile" ]; then
  profile="${2:?--profile needs a name: release or dev}"
fi
case "$profile" in
  dev) dir=debug ;;
  *) dir="$profile" ;;
esac
command -v cargo-deb >/dev/null || {
  echo "deb.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 1
}
echo "deb.sh: building dvip and dvipd ($profile)" >&2
cargo build --locked --profile "$profile" -p dvip -p dvipd
out="target/$dir/package"
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"
echo "deb.sh: man pages and completions" >&2
"target/$dir/dvip" man "$out/man"
"target/$dir/dvipd" --man > "$out/man/dvipd.8"
gzip -9n "$out"/man/*
"target/$dir/dvip" completions bash > "$out/completions/dvip"
"target/$dir/dvip" completions zsh > "$out/completions/_dvip"
"target/$dir/dvip" completions fish > "$out/completions/dvip.fish"
echo "deb.sh: packaging" >&2
cargo deb -p dvip --no-build --profile "$profile" --no-strip -o target/debian
