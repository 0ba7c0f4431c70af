package vllmmetrics

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
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
	// promptLengths sums the buckets of vllm:request_prompt_tokens.
	promptLengths histogram
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
	a.promptLengths.init()
	return a
}

func (a *accumulator) add(s *promtext.Sample) error {
	m, _ := lookup(s.Name)
	if v := s.Value; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("%w: line %d: %s is %v; vLLM's gauges, counters and bucket counts are finite and not negative",
			ErrInvalidValue, s.Line, seriesString(s), v)
	}
	if m == promptLengthBuckets {
		return a.addBucket(s)
	}
	a.key = a.seriesKey(append(a.key[:0], byte(m)), s, -1)
	if err := a.newSeries(m, s); err != nil {
		return err
	}
	a.sum[m] += s.Value
	engine := a.labels(s)
	if m == running {
		a.engines.add(engine)
	}
	if m == cacheConfig {
		a.kvTokens += cacheTokens(s)
	}
	return nil
}

// newSeries records the series of key a.key, unless it is a duplicate or one too many for m.
func (a *accumulator) newSeries(m metric, s *promtext.Sample) error {
	if first, dup := a.keys.insert(a.key, s.Line); dup {
		return fmt.Errorf("%w: line %d: %s is already on line %d", ErrDuplicate, s.Line, seriesString(s), first)
	}
	if a.count[m] == MaxSeriesPerMetric {
		return fmt.Errorf("%w: line %d: more than %d label sets for %s; refusing a label explosion",
			ErrTooManySeries, s.Line, MaxSeriesPerMetric, metricNames[m])
	}
	a.count[m]++
	return nil
}

// labels records the sample's model and returns its engine: nil for vLLM V0, which has no engine label
// and counts as one engine.
func (a *accumulator) labels(s *promtext.Sample) (engine []byte) {
	for i := range s.NumLabels() {
		switch name, value := s.LabelAt(i); string(name) {
		case "model_name":
			a.models.add(value)
		case "engine":
			engine = value
		}
	}
	return engine
}

// addBucket adds a sample of vllm:request_prompt_tokens_bucket. Its series key is its label set's index
// and its bound as a number, so that "1" and "1.0" in one label set are one series.
func (a *accumulator) addBucket(s *promtext.Sample) error {
	le, bound, err := bucketBound(s)
	if err != nil {
		return err
	}
	h := &a.promptLengths
	a.key = a.seriesKey(append(a.key[:0], bucketLabelSet), s, le)
	group, known := a.keys.insert(a.key, h.groups)
	if !known {
		h.groups++
	}
	a.key = binary.AppendUvarint(append(a.key[:0], byte(promptLengthBuckets)), uint64(group))
	a.key = binary.LittleEndian.AppendUint64(a.key, math.Float64bits(bound))
	if err := a.newSeries(promptLengthBuckets, s); err != nil {
		return err
	}
	h.add(bound, s.Value)
	if !known {
		a.labels(s) // a known label set's model is recorded
	}
	return nil
}

// bucketLabelSet tags the key of a bucket's label set without le, to tell it from every metric's series.
const bucketLabelSet = byte(numMetrics)

// seriesKey appends an encoding of the sample's label set, but for the label at index skip (-1 for none),
// that does not depend on label order or spacing, so the same series written twice differently is still
// caught.
func (a *accumulator) seriesKey(dst []byte, s *promtext.Sample, skip int) []byte {
	a.order = a.order[:0]
	for i := range s.NumLabels() {
		if i != skip {
			a.order = append(a.order, i)
		}
	}
	a.sortByName(s)
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

// sortByName sorts a.order, indexes of the sample's labels, by label name: by insertion for the few labels
// of a vLLM series, which costs less than a generic sort's setup.
func (a *accumulator) sortByName(s *promtext.Sample) {
	o := a.order
	name := func(i int) []byte { n, _ := s.LabelAt(o[i]); return n }
	if len(o) > 12 {
		slices.SortFunc(o, func(i, j int) int {
			ni, _ := s.LabelAt(i)
			nj, _ := s.LabelAt(j)
			return bytes.Compare(ni, nj)
		})
		return
	}
	for i := 1; i < len(o); i++ {
		for j := i; j > 0 && bytes.Compare(name(j), name(j-1)) < 0; j-- {
			o[j], o[j-1] = o[j-1], o[j]
		}
	}
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

// seriesSet maps keys to the value first stored with each: a series' first line, a label set's index. A
// pod has a few dozen keys: they live in arrays of the struct, found through an open-addressing table of
// their hashes, so that a Parse allocates nothing for them and a thousand label sets are not compared
// pairwise. Past the arrays, the slices grow.
type seriesSet struct {
	arena  []byte
	refs   []keyRef
	slots  []slot // a power of two, at most 3/4 full
	arenaB [4096]byte
	refBuf [96]keyRef
	slotB  [128]slot
}

// keyRef is a key's place in the arena and its value.
type keyRef struct{ start, end, val int }

// slot is a key's hash, cut to the bits that index any table a Parse builds, and 1 + its index in refs;
// 0 for a free slot.
type slot struct {
	hash uint32
	ref  int32
}

var keySeed = maphash.MakeSeed()

func (ss *seriesSet) init() {
	ss.arena, ss.refs, ss.slots = ss.arenaB[:0], ss.refBuf[:0], ss.slotB[:]
}

// insert returns the value stored with key and true if key is in the set, else stores val with it and
// returns val and false.
func (ss *seriesSet) insert(key []byte, val int) (int, bool) {
	h := uint32(maphash.Bytes(keySeed, key))
	mask := uint32(len(ss.slots) - 1)
	i := h & mask
	for ; ss.slots[i].ref != 0; i = (i + 1) & mask {
		if sl := ss.slots[i]; sl.hash == h {
			if r := ss.refs[sl.ref-1]; bytes.Equal(ss.arena[r.start:r.end], key) {
				return r.val, true
			}
		}
	}
	start := len(ss.arena)
	ss.arena = append(ss.arena, key...)
	ss.refs = append(ss.refs, keyRef{start, len(ss.arena), val})
	ss.slots[i] = slot{h, int32(len(ss.refs))}
	if 4*len(ss.refs) > 3*len(ss.slots) {
		ss.grow()
	}
	return val, false
}

// grow doubles the table and places every key again.
func (ss *seriesSet) grow() {
	old := ss.slots
	ss.slots = make([]slot, 2*len(old))
	mask := uint32(len(ss.slots) - 1)
	for _, sl := range old {
		if sl.ref == 0 {
			continue
		}
		i := sl.hash & mask
		for ss.slots[i].ref != 0 {
			i = (i + 1) & mask
		}
		ss.slots[i] = sl
	}
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
