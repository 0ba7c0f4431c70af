# The operator, the scaler and vllm-sim on distroless, for users with Docker (kubebuilder's shape). One
# builder stage compiles all three; pick the image with --target:
#
#   docker buildx build --platform linux/amd64,linux/arm64 --target operator \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t llm-d-operator:0.1.0 .
#
# Targets: operator (the default), scaler, vllm-sim. Releases and `make images` build the same programs
# without Docker or a base image (hack/images, package images); images/dockerfile_test.go keeps the two in
# step (binaries, build flags, user, entrypoint, labels).

FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG REVISION=unknown
WORKDIR /workspace
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
    -ldflags="-s -w -X github.com/llm-d/llm-d/version.Version=${VERSION} -X github.com/llm-d/llm-d/version.Revision=${REVISION}" \
    -o /out/ ./cmd/operator ./cmd/scaler ./cmd/vllm-sim
# vllm-sim also answers as python3: the operator's model-download init container runs python3 in the vLLM image.
RUN mkdir -p /rootfs/vllm-sim/usr/bin && ln -s /vllm-sim /rootfs/vllm-sim/usr/bin/python3

FROM gcr.io/distroless/static:nonroot AS vllm-sim
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/llm-d/llm-d" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.title="vllm-sim" \
      org.opencontainers.image.description="A simulated vLLM server for clusters without GPUs: vLLM's command line, OpenAI API, /health and /metrics."
WORKDIR /
COPY --from=builder /out/vllm-sim /vllm-sim
COPY --from=builder /rootfs/vllm-sim/ /
USER 65532:65532
ENTRYPOINT ["/vllm-sim", "--host=0.0.0.0"]

FROM gcr.io/distroless/static:nonroot AS scaler
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/llm-d/llm-d" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.title="llm-d-scaler" \
      org.opencontainers.image.description="The llm-d KEDA external scaler: replica counts from vLLM's queue depth and decode throughput."
WORKDIR /
COPY --from=builder /out/scaler /scaler
USER 65532:65532
ENTRYPOINT ["/scaler"]

FROM gcr.io/distroless/static:nonroot AS operator
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/llm-d/llm-d" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.title="llm-d-operator" \
      org.opencontainers.image.description="The llm-d operator: runs LLMInferenceServices as vLLM Deployments and scales them with KEDA."
WORKDIR /
COPY --from=builder /out/operator /operator
USER 65532:65532
ENTRYPOINT ["/operator"]
