# Builds the manager as a static binary and runs it as a non-root user on a distroless base:
# no shell, no package manager, nothing but the binary and CA certificates.
#
#   make docker-build IMG=<registry>/apirule-operator:<tag>

# The builder runs on the build machine's platform and cross-compiles for the target's.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Dependencies first, in their own layer, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/

# CGO off: a static binary that needs no libc in the runtime image.
# The image has no .git: the version and commit come as build arguments (make docker-build).
ARG VERSION=unknown
ARG COMMIT=unknown
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w -X github.com/apirule-operator/apirule-operator/internal/version.version=${VERSION} -X github.com/apirule-operator/apirule-operator/internal/version.commit=${COMMIT}" \
    -o manager ./cmd/manager

FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
# 65532 is distroless's nonroot user; numeric, so that runAsNonRoot can verify it.
USER 65532:65532

ENTRYPOINT ["/manager"]
