#!/usr/bin/env bash
# Checks a built package: what it holds, what it depends on, and that what it installs runs.
#
#   packaging/check-deb.sh [target/debian/dvip_*.deb]
#
# Exits 1 naming the first thing missing or broken.
set -euo pipefail
cd "$(dirname "$0")/.."
deb="${1:-$(ls -t target/debian/dvip_*.deb | head -1)}"
fail() { echo "check-deb: $deb: $*" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

fields=$(dpkg-deb -f "$deb" Package Depends Conffiles 2>/dev/null || dpkg-deb -f "$deb" Package Depends)
[[ "$fields" == *"Package: dvip"* ]] || fail "not the dvip package: $fields"
for dependency in "corosync (>= 3)" libcpg libcmap; do
  [[ "$fields" == *"$dependency"* ]] || fail "does not depend on $dependency: $fields"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = "/etc/dvip/dvip.conf" ] ||
  fail "/etc/dvip/dvip.conf is not a conffile"

dpkg-deb -x "$deb" "$root"
for path in \
  usr/sbin/dvip usr/sbin/dvipd \
  usr/lib/systemd/system/dvipd.service usr/lib/systemd/system/dvip-collect.service \
  etc/dvip/dvip.conf \
  usr/share/doc/dvip/examples/corosync.conf usr/share/doc/dvip/examples/dvip-hook \
  usr/share/doc/dvip/examples/collect.conf \
  usr/share/doc/dvip/examples/mta-2x.conf usr/share/doc/dvip/examples/mta-3x.conf \
  usr/share/doc/dvip/daemon.md usr/share/doc/dvip/config.md \
  usr/share/man/man1/dvip.1.gz usr/share/man/man1/dvip-status.1.gz usr/share/man/man8/dvipd.8.gz \
  usr/share/bash-completion/completions/dvip usr/share/zsh/vendor-completions/_dvip \
  usr/share/fish/vendor_completions.d/dvip.fish; do
  [ -s "$root/$path" ] || fail "lacks /$path"
done
for program in usr/sbin/dvip usr/sbin/dvipd usr/share/doc/dvip/examples/dvip-hook; do
  [ -x "$root/$program" ] || fail "/$program is not executable"
done

version=$(dpkg-deb -f "$deb" Version)
"$root/usr/sbin/dvip" --version | grep -q "^dvip ${version%-*}$" || fail "dvip --version is not ${version%-*}"
"$root/usr/sbin/dvipd" --version | grep -q "^dvipd ${version%-*}$" || fail "dvipd --version is not ${version%-*}"
"$root/usr/sbin/dvip" config check "$root/etc/dvip/dvip.conf" >/dev/null 2>&1 ||
  fail "the shipped /etc/dvip/dvip.conf does not pass dvip config check"
"$root/usr/sbin/dvipd" --config "$root/etc/dvip/dvip.conf" --check >/dev/null 2>&1 ||
  fail "the shipped /etc/dvip/dvip.conf does not pass dvipd --check"
for example in mta-2x mta-3x; do
  "$root/usr/sbin/dvip" config check "$root/usr/share/doc/dvip/examples/$example.conf" >/dev/null 2>&1 ||
    fail "example $example.conf does not pass dvip config check"
done
"$root/usr/sbin/dvip" collect --check --config "$root/usr/share/doc/dvip/examples/collect.conf" >/dev/null 2>&1 ||
  fail "the example collect.conf does not pass dvip collect --check"
grep -q "crypto_cipher: aes256" "$root/usr/share/doc/dvip/examples/corosync.conf" ||
  fail "the example corosync.conf has crypto off"
grep -q "^ExecStart=/usr/sbin/dvipd --config /etc/dvip/dvip.conf$" "$root/usr/lib/systemd/system/dvipd.service" ||
  fail "the unit does not run the packaged dvipd on /etc/dvip/dvip.conf"
for page in "$root"/usr/share/man/man1/*.gz "$root"/usr/share/man/man8/*.gz; do
  gzip -t "$page" || fail "$(basename "$page") is not gzip"
  zcat "$page" | grep -q '^\.TH ' || fail "$(basename "$page") is not a man page"
done
bash -n "$root/usr/share/bash-completion/completions/dvip" || fail "the bash completion does not parse"
grep -q '^#compdef dvip' "$root/usr/share/zsh/vendor-completions/_dvip" || fail "the zsh completion is not one"
sh -n "$root/usr/share/doc/dvip/examples/dvip-hook" || fail "the example hook does not parse"
echo "check-deb: $deb: ok ($(dpkg-deb -c "$deb" | wc -l) entries)"
