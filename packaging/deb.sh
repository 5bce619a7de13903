#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (README "Installing"):
#   packaging/deb.sh                    a release build, then target/debian/rewind_<version>-1_<arch>.deb
#   packaging/deb.sh --debug [ARGS...]  packages the debug binary `cargo build` already made and builds
#                                       nothing (tests/packaging: CI has no time for a release build)
# Further arguments go to `cargo deb` (e.g. --output DIR, --fast).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || { echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2; exit 2; }
target="${CARGO_TARGET_DIR:-target}"
if [ "${1:-}" = --debug ]; then
  shift
  [ -x "$target/debug/rewind" ] || { echo "$target/debug/rewind is missing: run cargo build first" >&2; exit 2; }
  # cargo-deb packages target/release/* (it refuses target/debug paths, and its --profile dev is
  # deprecated): give it a target directory of its own whose release/rewind is the debug binary.
  stage="$target/deb-debug"
  mkdir -p "$stage/release"
  ln -sfn "$(realpath "$target/debug/rewind")" "$stage/release/rewind"
  target=$(realpath "$stage")
  export CARGO_TARGET_DIR="$target"
else
  cargo build --release --locked --bin rewind
fi
bin="$target/release/rewind"

# Shell completions and man pages come from the binary itself. `rewind completions` and `rewind man`
# arrive with issue 20's command-line work: a binary without them makes a package without them (the
# variant that adds them is selected only when something was generated).
share="$target/release/generated/share"
rm -rf "$share"
if "$bin" completions bash >/dev/null 2>&1; then
  mkdir -p "$share/bash-completion/completions" "$share/zsh/vendor-completions" "$share/fish/vendor_completions.d"
  "$bin" completions bash >"$share/bash-completion/completions/rewind"
  "$bin" completions zsh >"$share/zsh/vendor-completions/_rewind"
  "$bin" completions fish >"$share/fish/vendor_completions.d/rewind.fish"
fi
if "$bin" man --help >/dev/null 2>&1; then
  mkdir -p "$share/man/man1"
  "$bin" man --dir "$share/man/man1"
  # Debian ships man pages gzipped; cargo-deb leaves files it finds under target/ as they are.
  gzip -9n "$share"/man/man1/*
fi
variant=()
[ -d "$share" ] && variant=(--variant generated)

cargo deb --no-build "${variant[@]}" "$@"
