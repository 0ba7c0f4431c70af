package server

import (
	"fmt"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/llm-d/llm-d/api/contract"
	pb "github.com/llm-d/llm-d/proto/externalscaler"
)

// checkKey checks key's contract on one ref: no panic; a refusal is InvalidArgument with a readable
// message; an acceptance names a DNS-1123 service in the ref's own namespace (never one from metadata), taken
// from metadata.service or else the ScaledObject's name, and only for metadata within the size limits.
func checkKey(t *testing.T, ref *pb.ScaledObjectRef) {
	t.Helper()
	k, err := key(ref)
	md := ref.GetScalerMetadata()
	size := 0
	for key, v := range md {
		size += len(key) + len(v)
	}
	if err != nil {
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("refused with %v, want InvalidArgument", err)
		}
		if msg := status.Convert(err).Message(); msg == "" || !utf8.ValidString(msg) {
			t.Fatalf("refusal message %q", msg)
		}
		return
	}
	if len(md) > maxMetadataEntries || size > maxMetadataBytes {
		t.Fatalf("accepted %d entries and %d bytes of metadata", len(md), size)
	}
	if k.Namespace != ref.GetNamespace() {
		t.Fatalf("namespace %q, the ref says %q", k.Namespace, ref.GetNamespace())
	}
	want, ok := md[contract.MetadataService]
	if !ok {
		want = ref.GetName()
	}
	if k.Name != want {
		t.Fatalf("service %q, want %q", k.Name, want)
	}
	for _, s := range []string{k.Namespace, k.Name} {
		if !dns1123.MatchString(s) {
			t.Fatalf("accepted %q", s)
		}
	}
	if len(k.Namespace) > 63 || len(k.Name) > 253 {
		t.Fatalf("accepted a name of %d or %d bytes", len(k.Namespace), len(k.Name))
	}
}

// FuzzScalerMetadata fuzzes the parsing of KEDA's ScaledObjectRef (namespace, name and the trigger's whole
// metadata map) with structured inputs: a service key present or not, and copies of an extra key.
func FuzzScalerMetadata(f *testing.F) {
	f.Add("llama-3-8b", "inference", "llama-3-8b", true, "scalerAddress", "llm-d-scaler.llm-d-system.svc:9090", uint16(1))
	f.Add("so-name", "default", "", false, "", "", uint16(0))
	f.Add("x", "default", "Bad_Name", true, "k", "v", uint16(100))
	f.Add("x", "kube-system", "../etc", true, "namespace", "other", uint16(1))
	f.Add("x", "default", "a", true, "big", string(make([]byte, 9000)), uint16(1))
	f.Add("", "", "", true, "", "", uint16(0))
	f.Add("x", "n", "llama\nlevel=error", true, "", "", uint16(0))
	f.Fuzz(func(t *testing.T, name, namespace, service string, hasService bool, extraKey, extraValue string, copies uint16) {
		md := map[string]string{}
		if hasService {
			md[contract.MetadataService] = service
		}
		for i := range int(copies % 64) {
			md[fmt.Sprint(extraKey, i)] = extraValue
		}
		checkKey(t, &pb.ScaledObjectRef{Name: name, Namespace: namespace, ScalerMetadata: md})
	})
}

// FuzzScaledObjectRefWire feeds arbitrary bytes to the protobuf decoding of a ScaledObjectRef, as a
// malformed call would reach the server, and checks key on whatever decodes.
func FuzzScaledObjectRefWire(f *testing.F) {
	for _, r := range []*pb.ScaledObjectRef{
		{Name: "llama", Namespace: "inference", ScalerMetadata: map[string]string{"service": "llama", "scalerAddress": "x:9090"}},
		{Name: "llama", Namespace: "inference"},
		{Namespace: "inference", ScalerMetadata: map[string]string{"service": "Bad"}},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		ref := &pb.ScaledObjectRef{}
		if err := proto.Unmarshal(data, ref); err != nil {
			return // gRPC answers a message that does not decode before any handler runs
		}
		checkKey(t, ref)
	})
}
