// Package layering checks the module's import graph against its layering rules: the scaler never imports
// the operator or KEDA's API types (it shares only api/contract with the operator), the contract package
// imports only the standard library and Kubernetes' core API types, and library code never imports test code.
package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llm-d/llm-d/internal/repo"
)

const module = "github.com/llm-d/llm-d"

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string // direct imports of its non-test files
	Deps       []string // every package those import, transitively
	Standard   bool
}

// graph lists every package of the module and every package they depend on (once per test binary).
func graph(t *testing.T) map[string]*pkg {
	t.Helper()
	g, err := listGraph()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var listGraph = sync.OnceValues(func() (map[string]*pkg, error) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Deps,Standard", "./...")
	cmd.Dir = repo.Root()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps ./...: %w\n%s", err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := &pkg{}
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			return pkgs, nil
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list's output: %w", err)
		}
		pkgs[p.ImportPath] = p
	}
})

// importChain is the shortest chain of imports from from to to, e.g. "a -> b -> c".
func importChain(g map[string]*pkg, from, to string) string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			chain := []string{}
			for p := to; p != ""; p = prev[p] {
				chain = append(chain, strings.TrimPrefix(p, module+"/"))
			}
			slices.Reverse(chain)
			return strings.Join(chain, " -> ")
		}
		if p := g[cur]; p != nil {
			for _, next := range p.Imports {
				if _, seen := prev[next]; !seen {
					prev[next] = cur
					queue = append(queue, next)
				}
			}
		}
	}
	return from + " -> ... -> " + to
}

// violations lists, for each package of roots, the dependencies that forbidden matches, with the chain of
// imports that brings each in.
func violations(g map[string]*pkg, roots []string, forbidden func(dep string) bool) []string {
	var found []string
	for _, root := range roots {
		for _, dep := range g[root].Deps {
			if forbidden(dep) {
				found = append(found, importChain(g, root, dep))
			}
		}
	}
	return found
}

// under reports whether path is dir or a package below it.
func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }

// packagesOf lists the module's packages that match keep.
func packagesOf(g map[string]*pkg, keep func(path string) bool) []string {
	var out []string
	for path := range g {
		if under(path, module) && keep(path) {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

// scalerForbidden is what the scaler's binary must not link: the operator (its builders and reconcilers) and
// KEDA's API types. Both sides share names and numbers through api/contract.
func scalerForbidden(dep string) bool {
	return under(dep, module+"/controllers") || under(dep, module+"/cmd/operator") ||
		under(dep, "github.com/kedacore/keda/v2/apis")
}

func TestScalerDoesNotImportTheOperator(t *testing.T) {
	g := graph(t)
	roots := packagesOf(g, func(p string) bool { return p == module+"/cmd/scaler" || under(p, module+"/scaler") })
	if len(roots) < 5 || !slices.Contains(roots, module+"/cmd/scaler") {
		t.Fatalf("found only %v as the scaler's packages: has the layout changed?", roots)
	}
	for _, v := range violations(g, roots, scalerForbidden) {
		t.Errorf("the scaler imports the operator or KEDA's API types: %s\n"+
			"\tmove the shared name or number into api/contract and import that from both sides", v)
	}
}

// contractMayImport are the packages besides the standard library that api/contract may import: Kubernetes'
// core API types.
var contractMayImport = []string{"k8s.io/api/core/v1", "k8s.io/api/autoscaling/v2", "k8s.io/apimachinery/pkg/api/resource"}

func TestContractIsALeaf(t *testing.T) {
	g := graph(t)
	c := g[module+"/api/contract"]
	if c == nil {
		t.Fatal("package api/contract not found")
	}
	for _, imp := range c.Imports {
		if p := g[imp]; (p == nil || !p.Standard) && !slices.Contains(contractMayImport, imp) {
			t.Errorf("api/contract imports %s: it may import only the standard library and %v, so that the "+
				"operator and the scaler can both import it and nothing else of each other", imp, contractMayImport)
		}
	}
}

func TestLibraryCodeDoesNotImportTestCode(t *testing.T) {
	g := graph(t)
	isTest := func(p string) bool { return under(p, module+"/test") }
	libraries := packagesOf(g, func(p string) bool { return !isTest(p) })
	if len(libraries) < 10 {
		t.Fatalf("found only %d library packages: has the layout changed?", len(libraries))
	}
	for _, v := range violations(g, libraries, isTest) {
		t.Errorf("library code imports test code: %s\n"+
			"\tmove what both need into a library package (internal/... or the library itself)", v)
	}
}

// The checks above must be able to fail: each finds a planted import in a made-up graph.
func TestViolationsFindAPlantedImport(t *testing.T) {
	scaler, discovery, controllers, keda, testenv, lib := module+"/scaler/server", module+"/scaler/discovery",
		module+"/controllers", "github.com/kedacore/keda/v2/apis/keda/v1alpha1", module+"/test/testenv", module+"/localcluster"
	g := map[string]*pkg{
		scaler:      {ImportPath: scaler, Imports: []string{discovery}, Deps: []string{discovery, controllers, keda}},
		discovery:   {ImportPath: discovery, Imports: []string{controllers}, Deps: []string{controllers, keda}},
		controllers: {ImportPath: controllers, Imports: []string{keda}, Deps: []string{keda}},
		lib:         {ImportPath: lib, Imports: []string{testenv}, Deps: []string{testenv}},
	}
	got := violations(g, []string{scaler}, scalerForbidden)
	want := []string{"scaler/server -> scaler/discovery -> controllers",
		"scaler/server -> scaler/discovery -> controllers -> " + keda}
	if !slices.Equal(got, want) {
		t.Errorf("scaler violations = %q, want %q", got, want)
	}
	got = violations(g, []string{lib}, func(p string) bool { return under(p, module+"/test") })
	if want := []string{"localcluster -> test/testenv"}; !slices.Equal(got, want) {
		t.Errorf("library violations = %q, want %q", got, want)
	}
}
