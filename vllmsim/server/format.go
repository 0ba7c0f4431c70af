package server

import "encoding/json"

// format builds the response bodies of one endpoint, in OpenAI's shapes.
type format interface {
	// first is the chunk streamed before any token, or nil.
	first() any
	// token is the chunk carrying one token's text.
	token(text string) any
	// finish is the chunk that ends the choice.
	finish(reason string) any
	// usage is the chunk streamed last, or nil if the client did not ask for usage.
	usage(u *usage) any
	// response is the whole non-streaming response.
	response(text, reason string, u *usage) any
}

// base is what every response carries.
type base struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
}

// chatFormat is /v1/chat/completions: objects chat.completion and chat.completion.chunk.
type chatFormat struct {
	base
	withUsage bool
}

type chatChunk struct {
	base
	Choices []chatChunkChoice `json:"choices"`
	Usage   any               `json:"usage,omitempty"`
}

type chatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        chatDelta `json:"delta"`
	Logprobs     any       `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatResponse struct {
	base
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	Logprobs     any         `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
}

func (f *chatFormat) chunk(d chatDelta, reason *string) chatChunk {
	c := chatChunk{base: f.base, Choices: []chatChunkChoice{{Delta: d, FinishReason: reason}}}
	c.Object = "chat.completion.chunk"
	if f.withUsage {
		c.Usage = jsonNull
	}
	return c
}

func (f *chatFormat) first() any {
	empty := ""
	return f.chunk(chatDelta{Role: "assistant", Content: &empty}, nil)
}

func (f *chatFormat) token(text string) any { return f.chunk(chatDelta{Content: &text}, nil) }

func (f *chatFormat) finish(reason string) any { return f.chunk(chatDelta{}, &reason) }

func (f *chatFormat) usage(u *usage) any {
	if !f.withUsage {
		return nil
	}
	c := chatChunk{base: f.base, Choices: []chatChunkChoice{}, Usage: u}
	c.Object = "chat.completion.chunk"
	return c
}

func (f *chatFormat) response(text, reason string, u *usage) any {
	content, _ := json.Marshal(text)
	r := chatResponse{base: f.base, Usage: u, Choices: []chatChoice{{
		Message:      chatMessage{Role: "assistant", Content: content},
		FinishReason: reason,
	}}}
	r.Object = "chat.completion"
	return r
}

// completionFormat is /v1/completions: object text_completion, streamed or not.
type completionFormat struct {
	base
	withUsage bool
}

type completionChunk struct {
	base
	Choices []completionChoice `json:"choices"`
	Usage   any                `json:"usage,omitempty"`
}

type completionChoice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

func (f *completionFormat) chunk(text string, reason *string) completionChunk {
	c := completionChunk{base: f.base, Choices: []completionChoice{{Text: text, FinishReason: reason}}}
	if f.withUsage {
		c.Usage = jsonNull
	}
	return c
}

func (f *completionFormat) first() any { return nil }

func (f *completionFormat) token(text string) any { return f.chunk(text, nil) }

func (f *completionFormat) finish(reason string) any { return f.chunk("", &reason) }

func (f *completionFormat) usage(u *usage) any {
	if !f.withUsage {
		return nil
	}
	return completionChunk{base: f.base, Choices: []completionChoice{}, Usage: u}
}

func (f *completionFormat) response(text, reason string, u *usage) any {
	return completionChunk{base: f.base, Usage: u, Choices: []completionChoice{{Text: text, FinishReason: &reason}}}
}
