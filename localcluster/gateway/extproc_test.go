package gateway

import (
	"net/http"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func headerAnswer(metadata string, headers ...*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: headers},
		}},
	}}
	if metadata != "" {
		md, err := structpb.NewStruct(map[string]any{destinationNamespace: map[string]any{DestinationEndpointHeader: metadata}})
		if err != nil {
			panic(err)
		}
		resp.DynamicMetadata = md
	}
	return resp
}

func set(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, RawValue: []byte(value)}}
}

func TestDestination(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp *extprocv3.ProcessingResponse
		want []string
	}{
		{"metadata, as Envoy's load balancer reads it", headerAnswer("10.0.0.1:8000", set(DestinationEndpointHeader, "10.0.0.9:8000")), []string{"10.0.0.1:8000"}},
		{"the header without metadata", headerAnswer("", set("X-Gateway-Destination-Endpoint", "10.0.0.2:8000")), []string{"10.0.0.2:8000"}},
		{"fallbacks in order", headerAnswer("10.0.0.1:8000, 10.0.0.2:8000,"), []string{"10.0.0.1:8000", "10.0.0.2:8000"}},
		{"none", headerAnswer("", set("x-other", "1")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := destination(tc.resp); !slices.Equal(got, tc.want) {
				t.Errorf("destination = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMutate(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}, "X-Old": {"1"}, "Content-Length": {"10"}}
	appendOpt := set("x-list", "b")
	appendOpt.Append = wrapperspb.Bool(true)
	absent := set("content-type", "text/plain")
	absent.AppendAction = corev3.HeaderValueOption_ADD_IF_ABSENT
	mutate(h, &extprocv3.HeaderMutation{
		SetHeaders: []*corev3.HeaderValueOption{
			set("content-type", "application/json"), // the picker echoes the client's headers: no duplicate
			set(DestinationEndpointHeader, "10.0.0.1:8000"),
			set("content-length", "99"), // the body's own length wins
			set(":path", "/elsewhere"),
			set("x-list", "a"), appendOpt, absent,
		},
		RemoveHeaders: []string{"X-Old", ":method"},
	})
	want := http.Header{
		"Content-Type":                   {"application/json"},
		"X-Gateway-Destination-Endpoint": {"10.0.0.1:8000"},
		"Content-Length":                 {"10"},
		"X-List":                         {"a", "b"},
	}
	if len(h) != len(want) {
		t.Fatalf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if !slices.Equal(h[k], v) {
			t.Errorf("%s = %v, want %v", k, h[k], v)
		}
	}
}
