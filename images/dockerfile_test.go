package images

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDockerfileMatchesTheBuilder keeps the Dockerfile (for users with Docker) and Build (for releases and
// tests) in step: the same programs built with the same environment and flags, and per image the same
// base user, working directory, entrypoint, links and labels. Docker itself cannot run here (no engine, no
// base images), so the Dockerfile is parsed.
func TestDockerfileMatchesTheBuilder(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	builder := stage(t, stages, "builder")
	if !strings.HasPrefix(builder.from, "golang:") {
		t.Errorf("builder stage FROM %q, want a golang image", builder.from)
	}
	var pkgs []string
	for _, im := range All() {
		pkgs = append(pkgs, "./cmd/"+im.Command)
	}
	want := append(append(append(slices.Clone(BuildEnv), "GOOS=${TARGETOS:-linux}", "GOARCH=${TARGETARCH}", "go", "build"),
		BuildFlags("${VERSION}", "${REVISION}")...), append([]string{"-o", "/out/"}, pkgs...)...)
	if !slices.ContainsFunc(builder.runs, func(r []string) bool { return slices.Equal(r, want) }) {
		t.Errorf("the builder stage has no RUN\n  %q\namong\n  %q", want, builder.runs)
	}

	for i, im := range All() {
		s := stage(t, stages, im.Command)
		if s.from != "gcr.io/distroless/static:nonroot" {
			t.Errorf("%s: FROM %q, want gcr.io/distroless/static:nonroot", im.Command, s.from)
		}
		if s.user != User || s.workdir != WorkingDir || !slices.Equal(s.entrypoint, im.Entrypoint()) {
			t.Errorf("%s: USER %q WORKDIR %q ENTRYPOINT %q, want %q %q %q", im.Command, s.user, s.workdir, s.entrypoint,
				User, WorkingDir, im.Entrypoint())
		}
		if l := Labels(im, "${VERSION}", "${REVISION}"); !maps.Equal(s.labels, l) {
			t.Errorf("%s: LABEL %v, want %v", im.Command, s.labels, l)
		}
		copies := [][]string{{"--from=builder", "/out/" + im.Command, "/" + im.Command}}
		rootfs := "/rootfs/" + im.Command
		for _, l := range im.Links {
			ln := []string{"ln", "-s", "/" + im.Command, rootfs + l}
			if !slices.ContainsFunc(builder.runs, func(r []string) bool { return containsRun(r, ln) }) {
				t.Errorf("%s: the builder stage does not run %q", im.Command, ln)
			}
		}
		if len(im.Links) > 0 {
			copies = append(copies, []string{"--from=builder", rootfs + "/", "/"})
		}
		if !slices.EqualFunc(s.copies, copies, slices.Equal) {
			t.Errorf("%s: COPY %q, want %q", im.Command, s.copies, copies)
		}
		if i == len(All())-1 && stages[len(stages)-1].name != Operator.Command {
			t.Errorf("the last stage (docker build's default target) is %q, want %q", stages[len(stages)-1].name, Operator.Command)
		}
	}
}

// containsRun reports whether the shell words of a RUN contain cmd as a && separated command.
func containsRun(run, cmd []string) bool {
	for part := range strings.SplitSeq(strings.Join(run, " "), " && ") {
		if part == strings.Join(cmd, " ") {
			return true
		}
	}
	return false
}

func stage(t *testing.T, stages []dockerStage, name string) dockerStage {
	t.Helper()
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("the Dockerfile has no stage %q", name)
	return dockerStage{}
}

// dockerStage is what the test reads of one FROM ... AS name stage.
type dockerStage struct {
	name, from, user, workdir string
	entrypoint                []string
	labels                    map[string]string
	copies, runs              [][]string
}

// parseDockerfile is a strict reader of the instructions the Dockerfile uses: comments, line continuations,
// FROM [--platform=...] image AS name, ARG, WORKDIR, COPY, RUN, LABEL k="v" ..., USER and ENTRYPOINT in
// JSON form. Anything else is an error, so that a new instruction gets a check here.
func parseDockerfile(path string) ([]dockerStage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var stages []dockerStage
	var logical string
	for n, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if c, ok := strings.CutSuffix(line, "\\"); ok {
			logical += c + " "
			continue
		}
		logical += line
		inst, rest, _ := strings.Cut(strings.TrimSpace(logical), " ")
		logical = ""
		if inst == "" {
			continue
		}
		words, err := shellWords(rest)
		if err != nil {
			return nil, fmt.Errorf("Dockerfile:%d: %w", n+1, err)
		}
		if inst == "FROM" {
			if len(words) > 0 && strings.HasPrefix(words[0], "--platform=") {
				words = words[1:]
			}
			if len(words) != 3 || words[1] != "AS" {
				return nil, fmt.Errorf("Dockerfile:%d: want FROM image AS name", n+1)
			}
			stages = append(stages, dockerStage{from: words[0], name: words[2], labels: map[string]string{}})
			continue
		}
		if len(stages) == 0 {
			return nil, fmt.Errorf("Dockerfile:%d: %s before FROM", n+1, inst)
		}
		s := &stages[len(stages)-1]
		switch inst {
		case "ARG":
		case "WORKDIR":
			s.workdir = rest
		case "USER":
			s.user = rest
		case "COPY":
			s.copies = append(s.copies, words)
		case "RUN":
			s.runs = append(s.runs, words)
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &s.entrypoint); err != nil {
				return nil, fmt.Errorf("Dockerfile:%d: ENTRYPOINT is not in JSON (exec) form: %w", n+1, err)
			}
		case "LABEL":
			for _, w := range words {
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					return nil, fmt.Errorf("Dockerfile:%d: LABEL %q is not key=value", n+1, w)
				}
				s.labels[k] = v
			}
		default:
			return nil, fmt.Errorf("Dockerfile:%d: instruction %s is not one this test reads: add it to parseDockerfile", n+1, inst)
		}
	}
	return stages, nil
}

// shellWords splits s into words as a shell would for the quoting the Dockerfile uses: blanks separate words,
// double quotes group and are removed. Variables are kept as written.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}
