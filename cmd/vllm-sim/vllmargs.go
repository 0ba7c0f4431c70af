package main

import (
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// vLLM's server command line. The operator runs its --vllm-image with vLLM's arguments (--model, --port,
// --served-model-name and the user's engine.args); vllm-sim takes them unchanged. Flags vllm-sim defines
// (--model, --port, --host, --max-num-seqs, --max-num-batched-tokens, --block-size, --served-model-name,
// and its own) are parsed; any other long flag is taken for one of vLLM's, which has hundreds, generated from
// its engine configuration and growing with every release, and is ignored and logged once at startup.
// Parsing follows vLLM's argparse: '_' and '-' are alike in names, a flag's values are the tokens after it
// up to the next flag, and a positional argument is the model (`vllm serve MODEL`).

// vllmShortFlags are vLLM's single-dash abbreviations, each taking a value (-O also attached: -O3).
var vllmShortFlags = map[string]bool{"tp": true, "pp": true, "dp": true, "q": true, "O": true}

// vllmFlagName is the shape of a vLLM long flag's name, dotted for nested configs (--compilation-config.level).
var vllmFlagName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*(\.[a-z0-9_-]+)*$`)

// vllmCommandLine is a command line split into what vllm-sim's flag set parses and what it ignores.
type vllmCommandLine struct {
	// flags are vllm-sim's own flags, normalised to --name[=value] tokens, then the positional arguments.
	flags []string
	// positional are the arguments that are no flag's value: vLLM's model (at most one).
	positional []string
	// servedNames are the values of --served-model-name: vLLM serves the model under all of them.
	servedNames []string
	// ignored are the vLLM flags vllm-sim does not model, as given.
	ignored []string
}

// splitVLLMArgs splits args into vllm-sim's own flags (defined in fs) and the vLLM flags it ignores.
func splitVLLMArgs(args []string, fs *flag.FlagSet) (vllmCommandLine, error) {
	var c vllmCommandLine
	for i := 0; i < len(args); i++ {
		tok := args[i]
		if tok == "--" {
			c.positional = append(c.positional, args[i+1:]...)
			break
		}
		if !isFlag(tok) {
			c.positional = append(c.positional, tok)
			continue
		}
		dashes := "-"
		if strings.HasPrefix(tok, "--") {
			dashes = "--"
		}
		name, value, inline := strings.Cut(strings.TrimPrefix(tok, dashes), "=")
		name = strings.ReplaceAll(name, "_", "-")
		// values are the tokens after the flag up to the next flag.
		values := func() []string {
			j := i + 1
			for j < len(args) && !isFlag(args[j]) && args[j] != "--" {
				j++
			}
			v := args[i+1 : j]
			i = j - 1
			return v
		}
		if name == "h" || name == "help" {
			c.flags = append(c.flags, "-h")
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if name == "served-model-name" {
				names := []string{value}
				if !inline {
					names = values()
				}
				if len(names) == 0 || names[0] == "" {
					return c, fmt.Errorf("%s needs a name", tok)
				}
				c.servedNames = names // given twice, the last wins, as in vLLM
				continue
			}
			switch {
			case inline:
				c.flags = append(c.flags, "--"+name+"="+value)
			case isBool(f):
				c.flags = append(c.flags, "--"+name)
			case i+1 < len(args):
				// A flag's value may look like a flag (--port -1): flag.Parse would take it too.
				c.flags = append(c.flags, "--"+name+"="+args[i+1])
				i++
			default:
				c.flags = append(c.flags, "--"+name) // flag.Parse reports the missing value
			}
			continue
		}
		if dashes == "-" && !vllmShortFlags[name] && !(strings.HasPrefix(name, "O") && len(name) > 1) {
			return c, fmt.Errorf("unknown flag %s: vllm-sim takes its own flags (vllm-sim -h) and vLLM's long flags (--name), "+
				"and of vLLM's short ones -tp, -pp, -dp, -q and -O", tok)
		}
		if dashes == "--" && !vllmFlagName.MatchString(name) {
			return c, fmt.Errorf("flag %s is neither vllm-sim's (vllm-sim -h) nor shaped like one of vLLM's (--lower-case-words)", tok)
		}
		ignored := tok
		if !inline {
			if v := values(); len(v) > 0 {
				ignored += " " + strings.Join(v, " ")
			}
		}
		c.ignored = append(c.ignored, ignored)
	}
	c.flags = append(c.flags, c.positional...)
	return c, nil
}

// isFlag reports whether tok is a flag rather than a value: it starts with '-' and is not a negative number.
func isFlag(tok string) bool {
	if len(tok) < 2 || tok[0] != '-' {
		return false
	}
	_, err := strconv.ParseFloat(tok, 64)
	return err != nil
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
