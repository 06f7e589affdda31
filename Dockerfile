# syntax=docker/dockerfile:1.7
# One image per service from this file:
#   docker build --build-arg SERVICE=order-service -t ordermesh/order-service:dev .
# SERVICE is one of order-service, payment-service, inventory-service, notify-service.
# Used by docker-compose.yml and by deploy/kind/up.sh (`make images` builds all four).

FROM rust:1.95-bookworm AS builder
ARG SERVICE
WORKDIR /src
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The compose healthcheck probe (distroless has no shell and no curl): static, ~0.8 MB.
COPY deploy/docker/healthcheck.c /tmp/healthcheck.c
RUN gcc -static -Os -o /usr/local/bin/healthcheck /tmp/healthcheck.c
COPY . .
# Cargo caches survive between builds (BuildKit cache mounts); the binary is copied out of the
# cached target directory because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    case "${SERVICE}" in \
      order-service|payment-service|inventory-service|notify-service) ;; \
      *) echo "build-arg SERVICE must be order-service, payment-service, inventory-service or notify-service (got '${SERVICE}')" >&2; exit 1 ;; \
    esac \
 && cargo build --release --locked -p "${SERVICE}" \
 && install -D -m 0755 "target/release/${SERVICE}" /out/service

# Runtime: distroless (glibc, libgcc, CA certificates; no shell, no package manager), non-root.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG SERVICE
LABEL org.opencontainers.image.title="ordermesh ${SERVICE}" \
      org.opencontainers.image.source="ordermesh"
COPY --from=builder /out/service /usr/local/bin/service
COPY --from=builder /usr/local/bin/healthcheck /usr/local/bin/healthcheck
ENV LISTEN_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8080
# uid/gid 65532 (nonroot); Kubernetes runs it with a read-only root filesystem.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]
