#!/usr/bin/env bash
# End-to-end test on a real cluster: a kind cluster with Istio, the operator built from this
# checkout and installed with Helm, then every guide of docs/guides run step by step with its
# status codes checked (tests/e2e). Needs docker (or CONTAINER_TOOL), kind, kubectl, helm and
# network access; `make e2e` runs it. E2E_KEEP=1 keeps the cluster afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${E2E_CLUSTER:-apirule-e2e}
ISTIO_VERSION=${ISTIO_VERSION:-1.28.1}
IMG=${IMG:-apirule-operator:e2e}
HELM=${HELM:-helm}
# The ingress gateway's HTTPS and HTTP NodePorts, mapped to these ports on the host by kind
# (the default-gateway guide calls plain HTTP too, as GATEWAY_HTTP).
HOST_PORT=${E2E_HOST_PORT:-8443}
HOST_HTTP_PORT=${E2E_HOST_HTTP_PORT:-8080}

for tool in kind kubectl "$HELM" docker curl; do
  command -v "$tool" >/dev/null || { echo "e2e needs $tool on the PATH" >&2; exit 1; }
done

cleanup() {
  if [ "${E2E_KEEP:-0}" != 1 ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

echo "==> kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --wait 120s --config - <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: 30443
        hostPort: ${HOST_PORT}
      - containerPort: 30080
        hostPort: ${HOST_HTTP_PORT}
EOF

echo "==> Istio ${ISTIO_VERSION}"
work=$(mktemp -d)
curl -sSL "https://github.com/istio/istio/releases/download/${ISTIO_VERSION}/istio-${ISTIO_VERSION}-linux-amd64.tar.gz" \
  | tar -xz -C "$work"
"$work/istio-${ISTIO_VERSION}/bin/istioctl" install -y --set profile=default \
  --set 'components.ingressGateways[0].name=istio-ingressgateway' \
  --set 'components.ingressGateways[0].k8s.service.type=NodePort' \
  --set 'components.ingressGateways[0].k8s.service.ports[0].name=https' \
  --set 'components.ingressGateways[0].k8s.service.ports[0].port=443' \
  --set 'components.ingressGateways[0].k8s.service.ports[0].targetPort=8443' \
  --set 'components.ingressGateways[0].k8s.service.ports[0].nodePort=30443' \
  --set 'components.ingressGateways[0].k8s.service.ports[1].name=http2' \
  --set 'components.ingressGateways[0].k8s.service.ports[1].port=80' \
  --set 'components.ingressGateways[0].k8s.service.ports[1].targetPort=8080' \
  --set 'components.ingressGateways[0].k8s.service.ports[1].nodePort=30080'

echo "==> the operator from this checkout"
make docker-build IMG="$IMG"
kind load docker-image "$IMG" --name "$CLUSTER"
"$HELM" install apirule-operator charts/apirule-operator --namespace apirule-system --create-namespace \
  --set image.repository="${IMG%:*}" --set image.tag="${IMG##*:}" --set image.pullPolicy=Never --wait --timeout 5m

echo "==> the guides"
GATEWAY=127.0.0.1:${HOST_PORT} GATEWAY_HTTP=127.0.0.1:${HOST_HTTP_PORT} go test -tags e2e ./tests/e2e -run TestGuides -v -count=1 -timeout 30m
