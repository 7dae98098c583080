// Package api carries Rally's HTTP contract, api/openapi.yaml (OpenAPI 3.1),
// embedded so the binary serves it at GET /openapi.yaml and tests validate
// every response against it.
package api

import _ "embed"

// Spec is the contract's YAML text.
//
//go:embed openapi.yaml
var Spec []byte
