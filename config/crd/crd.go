// Package crd embeds the APIRule CustomResourceDefinition that controller-gen generates into
// bases/ ('make manifests'), so that offline tools validate against the very schema the
// cluster installs. It lives here because go:embed cannot reach files above a package's
// directory; controller-gen writes only bases/*.yaml and leaves this file alone.
package crd

import _ "embed"

// APIRules is the YAML of the apirules.gateway.apirule.io CustomResourceDefinition.
//
//go:embed bases/gateway.apirule.io_apirules.yaml
var APIRules []byte
