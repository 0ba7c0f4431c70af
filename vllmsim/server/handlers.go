package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/llm-d/llm-d/vllmsim"
)

// maxBodyBytes bounds a request body; prompts are only measured, never kept.
const maxBodyBytes = 32 << 20

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var req apiRequest
	if !decode(w, r, &req) {
		return
	}
	prompt, err := chatPromptTokens(req.Messages)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	id := s.ids.Add(1)
	f := &chatFormat{base: s.base("chatcmpl", id), withUsage: includeUsage(&req)}
	s.generate(w, r, id, &req, prompt, f)
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req apiRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Prompt) == 0 {
		writeError(w, http.StatusBadRequest, "prompt is required")
		return
	}
	prompt, err := completionPromptTokens(req.Prompt)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	id := s.ids.Add(1)
	f := &completionFormat{base: s.base("cmpl", id), withUsage: includeUsage(&req)}
	f.Object = "text_completion" // streamed chunks too
	s.generate(w, r, id, &req, prompt, f)
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{{
		"id": s.cfg.Model, "object": "model", "created": s.start.Unix(), "owned_by": "vllm",
		"root": s.cfg.Model, "parent": nil,
	}}})
}

// health is 503 until the simulated startup is over, as a Kubernetes probe of a starting vLLM sees it
// (a real one refuses connections; 503 keeps the probe's log readable).
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if !s.ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// generate runs one request through the replica and answers it, streamed or whole.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, id uint64, req *apiRequest, prompt int, f format) {
	if req.Model != "" && req.Model != s.cfg.Model {
		writeError(w, http.StatusNotFound, "The model `%s` does not exist.", req.Model)
		return
	}
	if req.N != nil && *req.N != 1 {
		writeError(w, http.StatusBadRequest, "n must be 1: the simulator generates one choice")
		return
	}
	maxTokens, err := s.cfg.outputTokens(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if s.cfg.PromptTokens > 0 {
		prompt = s.cfg.PromptTokens
	}
	prompt = max(prompt, 1)
	if !s.ready() {
		writeError(w, http.StatusServiceUnavailable, "the server is starting up")
		return
	}

	st := &stream{notify: make(chan struct{}, 1)}
	err = s.submit(r.Context(), vllmsim.Request{ID: id, PromptTokens: prompt, MaxTokens: maxTokens}, st)
	switch {
	case errors.Is(err, vllmsim.ErrPromptTooLong):
		writeError(w, http.StatusBadRequest, "This model's KV cache holds %d tokens. However, you requested %d tokens in the prompt.",
			s.cfg.Params.KVCacheTokens, prompt)
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}

	if req.Stream {
		s.stream(w, r, id, st, f, prompt)
		return
	}
	n, _, err := s.wait(r.Context(), st, -1)
	if err != nil {
		s.abort(id)
		return
	}
	writeJSON(w, http.StatusOK, f.response(fillerText(n), "length", newUsage(prompt, n)))
}

// stream sends each token as a server-sent event as soon as the replica produces it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, id uint64, st *stream, f format, prompt int) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "data: %s\n\n", b)
		return err
	}
	fail := func() { s.abort(id) }

	if c := f.first(); c != nil && send(c) != nil {
		fail()
		return
	}
	if rc.Flush() != nil {
		fail()
		return
	}
	sent := 0
	for done := false; !done; {
		var n int
		var err error
		n, done, err = s.wait(r.Context(), st, sent)
		if err != nil {
			fail()
			return
		}
		for ; sent < n; sent++ {
			if send(f.token(filler(sent))) != nil {
				fail()
				return
			}
		}
		if !done && rc.Flush() != nil {
			fail()
			return
		}
	}
	if send(f.finish("length")) != nil {
		return
	}
	if u := f.usage(newUsage(prompt, sent)); u != nil && send(u) != nil {
		return
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
	_ = rc.Flush()
}

// wait blocks until the request has more than seen tokens or has finished (seen < 0: until it has
// finished), and returns its token count and whether it has finished.
func (s *Server) wait(ctx context.Context, st *stream, seen int) (int, bool, error) {
	for {
		n, done := st.load()
		if done || (seen >= 0 && n > seen) {
			return n, done, nil
		}
		select {
		case <-st.notify:
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-s.done:
			return 0, false, errStopped
		}
	}
}

// base starts a response to request id: its OpenAI id, the wall-clock time and the model. The server's
// start time is in the id so that ids stay unique across restarts.
func (s *Server) base(prefix string, id uint64) base {
	return base{
		ID:      fmt.Sprintf("%s-%x%08x", prefix, s.start.UnixNano(), id),
		Created: time.Now().Unix(),
		Model:   s.cfg.Model,
	}
}

func includeUsage(req *apiRequest) bool {
	return req.StreamOptions != nil && req.StreamOptions.IncludeUsage
}

// decode reads the whole body into v. Reading to the end matters: only then does net/http watch the
// connection and cancel the request's context when a streaming client goes away.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: %v", err)
		return false
	}
	return true
}

// stream is one request's progress, written by Run's goroutine and read by its handler.
type stream struct {
	notify chan struct{} // one pending wake-up is enough: the handler reads the latest state
	mu     sync.Mutex
	tokens int
	done   bool
}

func (st *stream) update(tokens int, done bool) {
	st.mu.Lock()
	st.tokens, st.done = tokens, done
	st.mu.Unlock()
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

func (st *stream) load() (int, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.tokens, st.done
}
