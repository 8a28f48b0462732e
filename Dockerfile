# atomic-signup: release binary in a small Debian image.
#
#   docker build -t atomic-signup .
#   docker run --rm -e DATABASE_URL=postgres://… atomic-signup migrate
#   docker run --rm -p 8000:8000 -e DATABASE_URL=postgres://… atomic-signup        # serve
#
# TLS (sqlx, reqwest) is rustls, so neither stage needs OpenSSL.

# ---- builder ---------------------------------------------------------------------------------
# Pinned to the toolchain the project is developed with (rustc 1.95.0), on the same Debian
# release as the runtime stage so the binary's glibc matches.
FROM rust:1.95.0-slim-bookworm AS builder
WORKDIR /build

# 1. Dependencies only: the manifests plus empty targets. This layer is rebuilt only when
#    Cargo.toml or Cargo.lock change, not on every source edit.
#    The workspace's other member (crates/gotrue-double, a test double) is never built here, but
#    cargo needs its manifest (and target files) to load the workspace.
COPY Cargo.toml Cargo.lock ./
COPY crates/gotrue-double/Cargo.toml crates/gotrue-double/Cargo.toml
RUN mkdir src crates/gotrue-double/src \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && echo 'fn main() {}' > crates/gotrue-double/src/main.rs \
    && : > crates/gotrue-double/src/lib.rs \
    && cargo build --release --locked --bin atomic-signup \
    && rm -rf src \
    && rm -rf target/release/atomic-signup target/release/deps/atomic_signup-* \
        target/release/deps/libatomic_signup-* target/release/.fingerprint/atomic-signup-*

# 2. The crate itself. `sqlx::migrate!("./migrations")` embeds migrations/ at compile time, so it
#    is copied too (build.rs makes cargo notice new files there), and `.sqlx/` holds the offline data that lets `sqlx::query!` compile without
#    a database.
ENV SQLX_OFFLINE=true
COPY .sqlx ./.sqlx
COPY build.rs ./
COPY migrations ./migrations
COPY src ./src
# COPY keeps the files' own mtimes, which can be older than the dummy build above: touch the
# crate roots so cargo always recompiles the crate (and re-expands migrate!).
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin atomic-signup \
    && install -m 0755 target/release/atomic-signup /usr/local/bin/atomic-signup

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: the system CA store (the binary's rustls carries its own webpki roots; the
# store is for anything else that makes TLS calls from the container).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

COPY --from=builder /usr/local/bin/atomic-signup /usr/local/bin/atomic-signup

# No .env is baked in (see .dockerignore): configuration comes from the environment.
WORKDIR /app
USER 10001:10001
ENV BIND_ADDR=0.0.0.0:8000 \
    LOG_FORMAT=json
# 8000: the API; 9100: GET /metrics (METRICS_BIND_ADDR, loopback by default: set 0.0.0.0:9100 to
# scrape it from outside the container, and keep it off the internet).
EXPOSE 8000 9100

# `atomic-signup healthcheck` GETs /healthz (200 while the process runs, no I/O) on the port of
# BIND_ADDR, whatever it is set to.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["atomic-signup", "healthcheck"]

ENTRYPOINT ["atomic-signup"]
CMD ["serve"]
