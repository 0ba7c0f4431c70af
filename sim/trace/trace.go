// Package trace reads request traces in the format of the Azure LLM inference trace 2023 (Patel et al.,
// "Splitwise", ISCA 2024, CC-BY 4.0): a CSV with the columns TIMESTAMP, ContextTokens and GeneratedTokens.
package trace

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llm-d/llm-d/sim"
)

// layouts are the timestamp forms accepted: the Azure files' own, and RFC 3339 for hand-written traces.
var layouts = []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano}

// ParseAzure reads a trace and returns its requests in arrival order, times relative to the first one.
// Errors name the line.
func ParseAzure(r io.Reader) ([]sim.Request, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty trace: want a header TIMESTAMP,ContextTokens,GeneratedTokens")
		}
		return nil, fmt.Errorf("line 1: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	ts, okT := col["TIMESTAMP"]
	ctx, okC := col["ContextTokens"]
	gen, okG := col["GeneratedTokens"]
	if !okT || !okC || !okG {
		return nil, fmt.Errorf("line 1: header %q lacks TIMESTAMP, ContextTokens or GeneratedTokens", strings.Join(head, ","))
	}
	type row struct {
		at        time.Time
		ctx, gen  int
		lineIndex int
	}
	var rows []row
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		at, err := parseTime(strings.TrimSpace(rec[ts]))
		if err != nil {
			return nil, fmt.Errorf("line %d: TIMESTAMP %q: %w", line, rec[ts], err)
		}
		c, err1 := strconv.Atoi(strings.TrimSpace(rec[ctx]))
		g, err2 := strconv.Atoi(strings.TrimSpace(rec[gen]))
		if err1 != nil || err2 != nil || c < 1 || g < 1 {
			return nil, fmt.Errorf("line %d: ContextTokens %q and GeneratedTokens %q must be integers of at least 1", line, rec[ctx], rec[gen])
		}
		rows = append(rows, row{at, c, g, line})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("trace has a header but no request")
	}
	// The Azure files are sorted, but a hand-edited trace need not be; a stable sort keeps ties in file order.
	slices.SortStableFunc(rows, func(a, b row) int { return a.at.Compare(b.at) })
	out := make([]sim.Request, len(rows))
	for i, r := range rows {
		out[i] = sim.Request{At: r.at.Sub(rows[0].at), PromptTokens: r.ctx, OutputTokens: r.gen}
	}
	return out, nil
}

func parseTime(s string) (time.Time, error) {
	var err error
	for _, l := range layouts {
		var t time.Time
		if t, err = time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}
