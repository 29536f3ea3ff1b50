#!/usr/bin/env bash
# Builds the control-plane binaries envtest needs (kube-apiserver, etcd) from the Go module
# proxy, because setup-envtest's prebuilt downloads are not reachable from our machines.
# Usage: hack/build-envtest-assets.sh <dest-dir> <kubernetes-version> <etcd-version>
# The result is <dest-dir>/{kube-apiserver,etcd} plus a stamp file naming both versions, so a
# second run with the same versions does nothing.
set -euo pipefail

dest=$1
k8s_version=$2
etcd_version=$3
want="kube-apiserver=$k8s_version etcd=$etcd_version"

stamp="$dest/.versions"
if [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "envtest assets $want already in $dest"
  exit 0
fi

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
stamp="$dest/.versions"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# k8s.io/kubernetes publishes its staging modules with v0.x tags; its own go.mod replaces each of
# them with a ./staging path that does not exist in the module zip. Pin every one of them to the
# matching v0.x release instead.
staging_version="v0.${k8s_version#v1.}"
export GONOSUMDB="k8s.io,${GONOSUMDB:-}"
export GOFLAGS="-mod=mod"

echo "building kube-apiserver $k8s_version (staging modules $staging_version)"
mkdir -p "$work/apiserver"
cd "$work/apiserver"
go mod init envtest-assets/apiserver >/dev/null 2>&1
k8s_gomod=$(go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[[ -f "$k8s_gomod" ]] || { echo "could not download k8s.io/kubernetes@$k8s_version" >&2; exit 1; }
go_directive=$(awk '$1 == "go" {print $2; exit}' "$k8s_gomod")
go mod edit -go="$go_directive" -require="k8s.io/kubernetes@$k8s_version"
awk '$1 ~ /^k8s\.io\// && $2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$k8s_gomod" | sort -u |
  while read -r module; do
    go mod edit -replace="$module=$module@$staging_version"
  done
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
go mod tidy -e >/dev/null
minor=${k8s_version#v1.}
minor=${minor%%.*}
version_pkg=k8s.io/component-base/version
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-X $version_pkg.gitVersion=$k8s_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor" \
  -o "$dest/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver

echo "building etcd $etcd_version"
mkdir -p "$work/etcd"
cd "$work/etcd"
go mod init envtest-assets/etcd >/dev/null 2>&1
go mod edit -require="go.etcd.io/etcd/server/v3@$etcd_version"
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
go mod tidy -e >/dev/null
CGO_ENABLED=0 go build -trimpath -o "$dest/etcd" go.etcd.io/etcd/server/v3

echo "$want" > "$stamp"
echo "envtest assets $want built into $dest"
