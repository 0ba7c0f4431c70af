package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// The parts of OpenAI's request bodies the simulator uses; other fields are accepted and ignored.

type apiRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	Prompt              json.RawMessage `json:"prompt"` // only for /v1/completions
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Per message, Llama 3's chat template adds <|start_header_id|>, the role, <|end_header_id|>, "\n\n" and
// <|eot_id|> around the content.
const chatTemplateTokensPerMessage = 4

// estimateTokens is the prompt length of text: about 4 characters per token, OpenAI's rule of thumb for
// English, rounded up.
func estimateTokens(text string) int {
	return (utf8.RuneCountInString(text) + 3) / 4
}

// chatPromptTokens estimates a chat request's prompt: its messages' text plus the template's tokens.
func chatPromptTokens(msgs []chatMessage) (int, error) {
	if len(msgs) == 0 {
		return 0, errors.New("messages must not be empty")
	}
	var text strings.Builder
	for _, m := range msgs {
		s, err := messageText(m.Content)
		if err != nil {
			return 0, err
		}
		text.WriteString(s)
	}
	return estimateTokens(text.String()) + chatTemplateTokensPerMessage*len(msgs), nil
}

// messageText is a message's content: a string, or the text of an array of content parts.
func messageText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("message content must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// completionPromptTokens is the prompt length of /v1/completions' prompt: a string, one string in an
// array, or an array of token IDs.
func completionPromptTokens(raw json.RawMessage) (int, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return estimateTokens(s), nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err == nil {
		if len(ss) != 1 {
			return 0, errors.New("only one prompt per request is supported")
		}
		return estimateTokens(ss[0]), nil
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err == nil {
		return len(ids), nil
	}
	return 0, errors.New("prompt must be a string, an array of one string, or an array of token IDs")
}

// outputTokens is the number of tokens to generate: max_completion_tokens, else max_tokens, else the
// default, capped to the limit.
func (c Config) outputTokens(req *apiRequest) (int, error) {
	n := c.DefaultMaxTokens
	switch {
	case req.MaxCompletionTokens != nil:
		n = *req.MaxCompletionTokens
	case req.MaxTokens != nil:
		n = *req.MaxTokens
	}
	if n < 1 {
		return 0, fmt.Errorf("max_tokens must be at least 1, got %d", n)
	}
	return min(n, c.MaxTokensLimit), nil
}

// fillerWords are the generated text: one word per token.
var fillerWords = strings.Fields(`the model is simulated and every token it generates is a filler word
	chosen only so that clients have text to parse while the scheduler behaves like vLLM`)

// filler is the text of output token i.
func filler(i int) string { return " " + fillerWords[i%len(fillerWords)] }

// fillerText is the text of the first n output tokens.
func fillerText(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(filler(i))
	}
	return b.String()
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func newUsage(prompt, completion int) *usage {
	return &usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

// jsonNull is an explicit null: OpenAI sends "usage": null in every chunk but the last when the client
// asked for usage.
var jsonNull = json.RawMessage("null")

// writeError answers with OpenAI's error shape.
func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	kind := map[int]string{
		http.StatusBadRequest:         "BadRequestError",
		http.StatusNotFound:           "NotFoundError",
		http.StatusServiceUnavailable: "ServiceUnavailableError",
	}[code]
	if kind == "" {
		kind = "InternalServerError"
	}
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"message": fmt.Sprintf(format, args...), "type": kind, "param": nil, "code": code,
	}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
