// Package protoconflict lets one binary link two generated copies of externalscaler.proto: ours
// (github.com/llm-d/llm-d/proto/externalscaler, what the scaler serves) and KEDA's
// (github.com/kedacore/keda/v2/pkg/scalers/externalscaler, what the KEDA operator dials with). Both declare
// the proto package "externalscaler" on purpose, since that is what makes the wire names match, so the
// second one to register in protobuf's global registry conflicts with the first, and protobuf-go panics at
// init by default (https://protobuf.dev/reference/go/faq#namespace-conflict). Neither production binary
// links both; only this contract test does.
//
// Setting GOLANG_PROTOBUF_REGISTRATION_CONFLICT=ignore in an init works because the Go spec fixes the
// initialization order (Go 1.21+): packages are initialized in import-path order as soon as their imports
// are. This package imports only "os", and its path sorts before google.golang.org/protobuf/..., which both
// generated packages import, so this init always runs before either of them registers. Marshalling is
// unaffected: each generated package keeps its own descriptors; only the global registry holds one copy
// (KEDA's, registered first). TestProtoMatchesKEDAs compares the two copies field by field instead.
package protoconflict

import "os"

// Env is the variable protobuf-go reads when a registration conflicts.
const Env = "GOLANG_PROTOBUF_REGISTRATION_CONFLICT"

func init() {
	if os.Getenv(Env) == "" {
		_ = os.Setenv(Env, "ignore")
	}
}
