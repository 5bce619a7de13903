#!/usr/bin/env bash
# The whole test suite. Installs what the tests need when it is missing (Debian packages, Rust
# components, cargo tools), so it passes on a fresh machine; then checks formatting and lints and runs
# every Rust and Lua test with cargo nextest. The nextest summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: programs the tests drive or compare against.
apt_needed=()
need() { command -v "$1" >/dev/null 2>&1 || apt_needed+=("$2"); }
need zstd zstd
need python3 python3
need cmake cmake
need pkg-config pkg-config
[ -n "${apt_needed[*]}" ] && { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${apt_needed[@]}"; }

rustup component add rustfmt clippy >/dev/null 2>&1 || true
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo build --quiet
cargo nextest run --no-fail-fast
