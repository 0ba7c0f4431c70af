package vllmmetrics

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-d/llm-d/scaler/promtext"
)

// accumulator folds the wanted samples of one payload. Its buffers are arrays in the struct, sized for a
// pod with a few engines, so that a Parse costs one allocation for them all; slices grow past them.
type accumulator struct {
	sum     [numMetrics]float64
	count   [numMetrics]int
	keys    seriesSet
	key     []byte
	order   []int
	engines distinct
	models  distinct
	// kvTokens sums num_gpu_blocks × block_size over vllm:cache_config_info's label sets.
	kvTokens float64

	keyBuf    [512]byte
	orderBuf  [16]int
	engineBuf [8]string
}

func newAccumulator() *accumulator {
	a := &accumulator{}
	a.key, a.order, a.engines.list = a.keyBuf[:0], a.orderBuf[:0], a.engineBuf[:0]
	a.keys.init()
	return a
}

func (a *accumulator) add(s *promtext.Sample) error {
	m, _ := lookup(s.Name)
	if v := s.Value; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("%w: line %d: %s is %v; vLLM's gauges and counters are finite and not negative",
			ErrInvalidValue, s.Line, seriesString(s), v)
	}
	a.key = a.seriesKey(a.key[:0], m, s)
	if first, dup := a.keys.lookup(a.key); dup {
		return fmt.Errorf("%w: line %d: %s is already on line %d", ErrDuplicate, s.Line, seriesString(s), first)
	}
	if a.count[m] == MaxSeriesPerMetric {
		return fmt.Errorf("%w: line %d: more than %d label sets for %s; refusing a label explosion",
			ErrTooManySeries, s.Line, MaxSeriesPerMetric, metricNames[m])
	}
	a.keys.add(a.key, s.Line)
	a.count[m]++
	a.sum[m] += s.Value
	var engine []byte // vLLM V0 has no engine label: one engine, counted as ""
	for i := range s.NumLabels() {
		switch name, value := s.LabelAt(i); string(name) {
		case "model_name":
			a.models.add(value)
		case "engine":
			engine = value
		}
	}
	if m == running {
		a.engines.add(engine)
	}
	if m == cacheConfig {
		a.kvTokens += cacheTokens(s)
	}
	return nil
}

// seriesKey appends an encoding of m and the sample's label set that does not depend on label order or
// spacing, so the same series written twice differently is still caught.
func (a *accumulator) seriesKey(dst []byte, m metric, s *promtext.Sample) []byte {
	a.order = a.order[:0]
	for i := range s.NumLabels() {
		a.order = append(a.order, i)
	}
	slices.SortFunc(a.order, func(i, j int) int {
		ni, _ := s.LabelAt(i)
		nj, _ := s.LabelAt(j)
		return bytes.Compare(ni, nj)
	})
	dst = append(dst, byte(m))
	for _, i := range a.order {
		name, value := s.LabelAt(i)
		// Lengths first: label values may hold any byte, so no separator is safe.
		dst = binary.AppendUvarint(dst, uint64(len(name)))
		dst = append(dst, name...)
		dst = binary.AppendUvarint(dst, uint64(len(value)))
		dst = append(dst, value...)
	}
	return dst
}

// distinct is a set of strings in first-seen order. Sets are small (the models and engines of one pod):
// a linear scan allocates nothing for a value already seen. An index takes over when a set grows, so that
// a hostile payload with thousands of values does not cost a quadratic scan.
type distinct struct {
	list  []string
	index map[string]struct{}
}

func (d *distinct) add(v []byte) {
	if d.index != nil {
		if _, ok := d.index[string(v)]; !ok {
			s := string(v)
			d.index[s] = struct{}{}
			d.list = append(d.list, s)
		}
		return
	}
	for _, s := range d.list {
		if s == string(v) {
			return
		}
	}
	d.list = append(d.list, string(v))
	if len(d.list) > 16 {
		d.index = make(map[string]struct{}, 2*len(d.list))
		for _, s := range d.list {
			d.index[s] = struct{}{}
		}
	}
}

// seriesString renders a sample's series for an error message, cut short if a label set is huge.
func seriesString(s *promtext.Sample) string {
	var b strings.Builder
	b.Write(s.Name)
	b.WriteByte('{')
	for i := range s.NumLabels() {
		if b.Len() > 200 {
			b.WriteString("...")
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		name, value := s.LabelAt(i)
		b.Write(name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(string(value)))
	}
	b.WriteByte('}')
	return b.String()
}

// seriesSet remembers series keys and the line each was first seen on. A pod has a few series per metric,
// one per engine: up to len(refBuf) keys are compared linearly in one buffer, allocating nothing; a map
// takes over past that, so that a thousand label sets are not compared pairwise.
type seriesSet struct {
	arena  []byte
	refs   []keyRef
	m      map[string]int
	arenaB [4096]byte
	refBuf [32]keyRef
}

type keyRef struct{ start, end, line int }

func (ss *seriesSet) init() {
	ss.arena, ss.refs = ss.arenaB[:0], ss.refBuf[:0]
}

func (ss *seriesSet) lookup(key []byte) (line int, ok bool) {
	if ss.m != nil {
		line, ok = ss.m[string(key)]
		return line, ok
	}
	for _, r := range ss.refs {
		if bytes.Equal(ss.arena[r.start:r.end], key) {
			return r.line, true
		}
	}
	return 0, false
}

// add records a key lookup did not find.
func (ss *seriesSet) add(key []byte, line int) {
	if ss.m == nil && len(ss.refs) < len(ss.refBuf) {
		start := len(ss.arena)
		ss.arena = append(ss.arena, key...)
		ss.refs = append(ss.refs, keyRef{start, len(ss.arena), line})
		return
	}
	if ss.m == nil {
		ss.m = make(map[string]int, 4*len(ss.refBuf))
		for _, r := range ss.refs {
			ss.m[string(ss.arena[r.start:r.end])] = r.line
		}
	}
	ss.m[string(key)] = line
}

// cacheTokens reads a vllm:cache_config_info sample's KV-cache size in tokens from its num_gpu_blocks and
// block_size labels; 0 when either is absent or not a positive integer (the override label, "None" in
// vLLM's output, is not the size).
func cacheTokens(s *promtext.Sample) float64 {
	var blocks, size float64
	for i := range s.NumLabels() {
		switch name, value := s.LabelAt(i); string(name) {
		case "num_gpu_blocks":
			blocks = positiveInt(value)
		case "block_size":
			size = positiveInt(value)
		}
	}
	return blocks * size
}

// positiveInt is b as a decimal integer below 2^53, 0 if it is anything else.
func positiveInt(b []byte) float64 {
	if len(b) == 0 || len(b) > 15 {
		return 0
	}
	var n float64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + float64(c-'0')
	}
	return n
}
