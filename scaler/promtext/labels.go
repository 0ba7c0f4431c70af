package promtext

import (
	"bytes"
	"slices"
)

// Label is a label pair, unescaped.
type Label struct {
	Name, Value string
}

// NumLabels is the number of labels of the sample.
func (s *Sample) NumLabels() int { return len(s.labels) }

// LabelAt returns the i-th label in payload order, 0 <= i < NumLabels(). The value is unescaped. Both
// slices are valid only until the callback returns; use them to compare or copy without allocating.
func (s *Sample) LabelAt(i int) (name, value []byte) {
	l := s.labels[i]
	return l.name, l.value
}

// Label returns a copy of the unescaped value of the label called name, and whether the sample has it.
func (s *Sample) Label(name string) (string, bool) {
	for _, l := range s.labels {
		if string(l.name) == name {
			return string(l.value), true
		}
	}
	return "", false
}

// Labels returns a copy of all labels in payload order.
func (s *Sample) Labels() []Label {
	out := make([]Label, len(s.labels))
	for i, l := range s.labels {
		out[i] = Label{Name: string(l.name), Value: string(l.value)}
	}
	return out
}

// parseLabels reads the label set whose '{' is just before line[i] and returns the index after its '}'.
// Whitespace may surround every token and a trailing comma is allowed, as in expfmt.
func (s *Sample) parseLabels(line []byte, i int) (int, error) {
	for {
		i = skipBlanks(line, i)
		if i == len(line) {
			return 0, s.errorf(kindOther, "label set is not closed with '}'")
		}
		if line[i] == '}' {
			return i + 1, s.checkDuplicates()
		}
		start := i
		for i < len(line) && class[line[i]]&labelChar != 0 {
			i++
		}
		if i < len(line) && line[i] == '"' {
			return 0, s.errorf(kindUTF8Name, "quoted label names are not supported, at %s", quote(line[start:]))
		}
		if i == start || class[line[start]]&digit != 0 {
			return 0, s.errorf(kindOther, "expected a label name or '}', found %s", quote(line[start:]))
		}
		name := line[start:i]
		if string(name) == "__name__" {
			return 0, s.errorf(kindOther, "label name __name__ is reserved")
		}
		if i = skipBlanks(line, i); i == len(line) || line[i] != '=' {
			return 0, s.errorf(kindOther, "expected '=' after label name %s, found %s", quote(name), quote(line[i:]))
		}
		if i = skipBlanks(line, i+1); i == len(line) || line[i] != '"' {
			return 0, s.errorf(kindOther, "expected '\"' to open the value of label %s, found %s", quote(name), quote(line[i:]))
		}
		value, end, err := s.labelValue(line, i+1, name)
		if err != nil {
			return 0, err
		}
		s.labels = append(s.labels, rawLabel{name: name, value: value})
		switch i = skipBlanks(line, end); {
		case i == len(line):
			return 0, s.errorf(kindOther, "label set is not closed with '}'")
		case line[i] == ',':
			i++
		case line[i] == '}':
			return i + 1, s.checkDuplicates()
		default:
			return 0, s.errorf(kindOther, "expected ',' or '}' after the value of label %s, found %s", quote(name), quote(line[i:]))
		}
	}
}

// labelValue reads a quoted value whose first byte is line[i] and returns it unescaped and the index after
// its closing quote. A value without escapes is a slice of line; one with escapes is unescaped into scratch.
func (s *Sample) labelValue(line []byte, i int, name []byte) ([]byte, int, error) {
	start := i
	for i < len(line) && line[i] != '"' && line[i] != '\\' {
		i++
	}
	if i == len(line) {
		return nil, 0, s.errorf(kindOther, "value of label %s is not closed with '\"'", quote(name))
	}
	if line[i] == '"' {
		return line[start:i], i + 1, nil
	}
	from := len(s.scratch)
	s.scratch = append(s.scratch, line[start:i]...)
	for ; i < len(line); i++ {
		c := line[i]
		switch c {
		case '"':
			return s.scratch[from:], i + 1, nil
		case '\\':
			if i++; i == len(line) {
				return nil, 0, s.errorf(kindOther, "value of label %s is not closed with '\"'", quote(name))
			}
			switch line[i] {
			case '\\', '"':
				c = line[i]
			case 'n':
				c = '\n'
			default:
				return nil, 0, s.errorf(kindOther, "invalid escape sequence %s in the value of label %s (only \\\\, \\\" and \\n are allowed)", quote(line[i-1:i+1]), quote(name))
			}
		}
		s.scratch = append(s.scratch, c)
	}
	return nil, 0, s.errorf(kindOther, "value of label %s is not closed with '\"'", quote(name))
}

// checkDuplicates rejects a label set that names a label twice: which value would Label return?
func (s *Sample) checkDuplicates() error {
	ls := s.labels
	if len(ls) <= 16 {
		for i := 1; i < len(ls); i++ {
			for j := 0; j < i; j++ {
				if bytes.Equal(ls[i].name, ls[j].name) {
					return s.duplicateError(ls[i].name)
				}
			}
		}
		return nil
	}
	// Quadratic is fine for real label sets, not for a hostile line with thousands of labels.
	sorted := slices.Clone(ls)
	slices.SortFunc(sorted, func(a, b rawLabel) int { return bytes.Compare(a.name, b.name) })
	for i := 1; i < len(sorted); i++ {
		if bytes.Equal(sorted[i].name, sorted[i-1].name) {
			return s.duplicateError(sorted[i].name)
		}
	}
	return nil
}

func (s *Sample) duplicateError(name []byte) error {
	kind := kindOther
	if string(name) == "le" || string(name) == "quantile" {
		kind = kindDuplicateBound
	}
	return s.errorf(kind, "metric %s has label %s twice", quote(s.Name), quote(name))
}

func (s *Sample) errorf(kind errKind, format string, args ...any) error {
	return syntaxErrorf(s.Line, kind, format, args...)
}
