package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestStreamingChatCompletion(t *testing.T) {
	_, ts := start(t, testConfig())
	resp := post(t, ts.URL+"/v1/chat/completions", `{"model":"test-model","max_tokens":5,"stream":true,
		"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hi"}]}`)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := sse(t, resp.Body)
	// role, 5 tokens, finish, usage, [DONE]
	if len(events) != 9 || events[8] != "[DONE]" {
		t.Fatalf("events: %q", events)
	}

	type chunk struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			Index int `json:"index"`
			Delta struct {
				Role    *string `json:"role"`
				Content *string `json:"content"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *usage `json:"usage"`
	}
	var text strings.Builder
	var id string
	for i, data := range events[:8] {
		var c chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %d %q: %v", i, data, err)
		}
		var raw map[string]json.RawMessage
		_ = json.Unmarshal([]byte(data), &raw)
		if i == 0 {
			id = c.ID
		}
		if c.Object != "chat.completion.chunk" || c.ID != id || !strings.HasPrefix(id, "chatcmpl-") ||
			c.Model != "test-model" || c.Created == 0 {
			t.Fatalf("chunk %d header: %s", i, data)
		}
		switch {
		case i == 7: // usage: no choices
			if len(c.Choices) != 0 || c.Usage == nil || *c.Usage != (usage{PromptTokens: 6, CompletionTokens: 5, TotalTokens: 11}) {
				t.Fatalf("usage chunk: %s", data)
			}
			continue
		case string(raw["usage"]) != "null":
			t.Fatalf("chunk %d should carry \"usage\": null when usage was asked for: %s", i, data)
		case len(c.Choices) != 1 || c.Choices[0].Index != 0:
			t.Fatalf("chunk %d choices: %s", i, data)
		}
		d := c.Choices[0]
		switch {
		case i == 0:
			if d.Delta.Role == nil || *d.Delta.Role != "assistant" || d.FinishReason != nil {
				t.Fatalf("first chunk: %s", data)
			}
		case i == 6:
			if d.Delta.Content != nil || d.FinishReason == nil || *d.FinishReason != "length" {
				t.Fatalf("finish chunk: %s", data)
			}
		default:
			if d.Delta.Content == nil || d.FinishReason != nil {
				t.Fatalf("token chunk %d: %s", i, data)
			}
			text.WriteString(*d.Delta.Content)
		}
	}
	if got := strings.Fields(text.String()); len(got) != 5 {
		t.Fatalf("streamed text %q, want 5 words", text.String())
	}
}

func TestStreamingCompletionWithoutUsage(t *testing.T) {
	_, ts := start(t, testConfig())
	resp := post(t, ts.URL+"/v1/completions", `{"prompt":"Once upon a time","max_tokens":3,"stream":true}`)
	defer resp.Body.Close()
	events := sse(t, resp.Body)
	if len(events) != 5 || events[4] != "[DONE]" {
		t.Fatalf("events: %q, want 3 tokens, a finish chunk and [DONE]", events)
	}
	for _, data := range events[:4] {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(data), &raw); err != nil {
			t.Fatal(err)
		}
		if _, has := raw["usage"]; has || string(raw["object"]) != `"text_completion"` {
			t.Fatalf("chunk %s: want object text_completion and no usage", data)
		}
	}
	if !strings.Contains(events[3], `"finish_reason":"length"`) {
		t.Fatalf("last chunk %s has no finish_reason", events[3])
	}
}

func TestNonStreamingUsage(t *testing.T) {
	type answer struct {
		Object  string `json:"object"`
		Choices []struct {
			Text         string `json:"text"`
			Message      struct{ Role, Content string }
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage usage `json:"usage"`
	}
	for _, tc := range []struct {
		name, path, body string
		promptOverride   int
		wantObject       string
		prompt, output   int
	}{{
		// 29 characters → 8 tokens, plus 4 template tokens for each of the 2 messages; default output.
		name: "chat", path: "/v1/chat/completions", wantObject: "chat.completion",
		body:   `{"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Hello, world!"}]}`,
		prompt: 16, output: 7,
	}, {
		name: "chat with content parts and max_completion_tokens over max_tokens", path: "/v1/chat/completions",
		wantObject: "chat.completion",
		body:       `{"max_tokens":3,"max_completion_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh"}]}]}`,
		prompt:     2 + 4, output: 4,
	}, {
		name: "completion", path: "/v1/completions", wantObject: "text_completion",
		body:   `{"prompt":"abcdefghi","max_tokens":2}`,
		prompt: 3, output: 2,
	}, {
		name: "completion of token IDs, max_tokens capped", path: "/v1/completions", wantObject: "text_completion",
		body:   `{"prompt":[1,2,3,4,5],"max_tokens":1000}`,
		prompt: 5, output: 50,
	}, {
		name: "prompt length overridden", path: "/v1/completions", wantObject: "text_completion",
		body: `{"prompt":"x","max_tokens":1}`, promptOverride: 300,
		prompt: 300, output: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.PromptTokens = tc.promptOverride
			_, ts := start(t, cfg)
			var a answer
			if code := postJSON(t, ts.URL+tc.path, tc.body, &a); code != http.StatusOK {
				t.Fatalf("status %d: %+v", code, a)
			}
			want := usage{PromptTokens: tc.prompt, CompletionTokens: tc.output, TotalTokens: tc.prompt + tc.output}
			if a.Object != tc.wantObject || a.Usage != want || len(a.Choices) != 1 || a.Choices[0].FinishReason != "length" {
				t.Fatalf("answer %+v, want object %s and usage %+v", a, tc.wantObject, want)
			}
			text := a.Choices[0].Text + a.Choices[0].Message.Content
			if n := len(strings.Fields(text)); n != tc.output {
				t.Fatalf("text %q has %d words, want %d", text, n, tc.output)
			}
		})
	}
}

func TestRejectedRequests(t *testing.T) {
	_, ts := start(t, testConfig())
	for _, tc := range []struct {
		name, path, body string
		want             int
	}{
		{"another model", "/v1/chat/completions", `{"model":"gpt-4","messages":[{"role":"user","content":"hi"}]}`, 404},
		{"not JSON", "/v1/chat/completions", `{"messages":`, 400},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400},
		{"no prompt", "/v1/completions", `{"max_tokens":3}`, 400},
		{"two prompts", "/v1/completions", `{"prompt":["a","b"]}`, 400},
		{"n=2", "/v1/completions", `{"prompt":"a","n":2}`, 400},
		{"max_tokens 0", "/v1/completions", `{"prompt":"a","max_tokens":0}`, 400},
		// 4096 tokens of cache; 20,000 characters are 5,000 tokens.
		{"prompt too long", "/v1/completions", `{"prompt":"` + strings.Repeat("x", 20_000) + `"}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
					Code    int    `json:"code"`
				} `json:"error"`
			}
			code := postJSON(t, ts.URL+tc.path, tc.body, &e)
			if code != tc.want || e.Error.Code != tc.want || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("status %d, error %+v; want %d with an OpenAI error body", code, e, tc.want)
			}
		})
	}
	resp, err := http.Get(ts.URL + "/v1/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/completions: %d", resp.StatusCode)
	}
}

func TestModels(t *testing.T) {
	_, ts := start(t, testConfig())
	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object string
			OwnedBy    string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "test-model" || list.Data[0].Object != "model" {
		t.Fatalf("models: %+v", list)
	}
}
