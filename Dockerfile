# syntax=docker/dockerfile:1
# rewind's container image, the one deploy/kubernetes/ runs: `docker build -t rewind .` (README
# "Installing"). CI cannot build it (no container engine); tests/packaging lints it with hadolint and
# tests/kubernetes holds the manifests to its user. Both stages are Debian 13, so the binary finds the
# glibc and OpenSSL it was linked against.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-trixie AS build
# librdkafka and aws-lc build from source (cmake); OpenSSL and zlib come from the system.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libssl-dev pkg-config zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target/ are cache mounts, kept between builds: the binary is copied out of them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rewind \
 && cp target/release/rewind /usr/local/bin/rewind

FROM debian:trixie-slim
# What the bundled procedures run (pg_dump, mariadb-dump, git, zstd), CA certificates for TLS, and the
# libraries the binary links. pg_dump refuses servers newer than itself: Debian 13's is PostgreSQL 17.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates git libssl3t64 mariadb-client postgresql-client zlib1g zstd \
 && rm -rf /var/lib/apt/lists/*
# Not root: the uid deploy/kubernetes/ runs as (runAsUser: 10001). Its home, /var/lib/rewind as in the
# Debian package, is where a volume for the daemon's --state goes (a new named volume takes its owner).
RUN useradd --no-log-init --uid 10001 --user-group --create-home --home-dir /var/lib/rewind --shell /usr/sbin/nologin rewind
COPY --from=build /usr/local/bin/rewind /usr/local/bin/rewind
USER 10001:10001
WORKDIR /var/lib/rewind
ENTRYPOINT ["rewind"]
CMD ["--help"]
