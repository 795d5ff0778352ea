#!/usr/bin/env bash
# Builds the interop oracle for dvip's journals: jlog's own C library from the jlog 1.0.2
# sdist on PyPI, and a small program on it (crates/dvip-journal/tests/oracle/jlog-oracle.c).
# Prints the oracle's path. Idempotent: does nothing when the oracle is already built.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/target/jlog-oracle"
oracle="$out/jlog-oracle"
source_c="crates/dvip-journal/tests/oracle/jlog-oracle.c"
if [ -x "$oracle" ] && [ "$oracle" -nt "$source_c" ]; then
  echo "$oracle"
  exit 0
fi
mkdir -p "$out"
if [ ! -f "$out/jlog/libjlog.a" ]; then
  echo "jlog oracle: fetching and building jlog 1.0.2 (PyPI sdist)" >&2
  rm -rf "$out/sdist" "$out/jlog"
  python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$out/sdist" jlog==1.0.2 >&2
  tar -xzf "$out"/sdist/jlog-1.0.2.tar.gz -C "$out"
  cp -r "$out/jlog-1.0.2/jlog" "$out/jlog"
  # configure fails at its very end on the Perl binding it cannot find; the Makefile and
  # jlog_config.h it has written by then are complete.
  (cd "$out/jlog" && { ./configure >configure.out 2>&1 || true; } && make libjlog.a >make.out 2>&1) || {
    echo "jlog oracle: building libjlog failed; see $out/jlog/make.out" >&2
    exit 1
  }
fi
cc -O2 -Wall -I"$out/jlog" -o "$oracle" "$source_c" "$out/jlog/libjlog.a" -lpthread
echo "$oracle"
