# syntax=docker/dockerfile:1
#
# errnowatch: one static binary for every role (agent, collector, alerts,
# trace, top). The chart runs the agent as root through the pod's
# securityContext (runAsUser 0: capabilities reach the effective set of uid 0
# only) and the collector as the image's nonroot user 65532.
#
# Reproducible: the Go build drops paths, the build ID and VCS stamps, and
# BuildKit takes SOURCE_DATE_EPOCH for the image's timestamps:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     --output type=image,name=ghcr.io/errnowatch/errnowatch:0.1.0,rewrite-timestamp=true .
#
# No clang is needed: the eBPF objects and their Go bindings are committed
# (pkg/sensor, for amd64 and arm64).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
# The image's toolchain builds; go.mod's go line never downloads another.
ENV GOTOOLCHAIN=local \
    GOFLAGS=-mod=readonly \
    CGO_ENABLED=0
WORKDIR /src
# Modules first, so that a source change reuses the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" \
      -o /out/errnowatch ./cmd/errnowatch

# distroless static: no shell, no package manager, CA certificates and
# /etc/passwd with nonroot (65532) only.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="errnowatch" \
      org.opencontainers.image.description="Failing syscalls as security alerts for Kubernetes nodes: eBPF agent, collector and CLI" \
      org.opencontainers.image.source="https://github.com/errnowatch/errnowatch" \
      org.opencontainers.image.url="https://github.com/errnowatch/errnowatch" \
      org.opencontainers.image.documentation="https://github.com/errnowatch/errnowatch/tree/main/charts/errnowatch" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.vendor="errnowatch" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build --chmod=0555 /out/errnowatch /usr/local/bin/errnowatch
USER 65532:65532
# The chart passes the role and its flags as args.
ENTRYPOINT ["/usr/local/bin/errnowatch"]
CMD ["--help"]
