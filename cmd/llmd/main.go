// Command llmd is the llm-d command-line tool.
//
//	llmd probe URL     scrape one vLLM /metrics endpoint twice and print the signals as the scaler computes them
//	llmd simulate      replay a request trace through simulated replicas under several autoscaling policies
//	llmd burst         send streaming completions at a fixed rate and report TTFT, latency and errors
//	llmd bench-scaling run the scaling benchmark's trace suite under every policy and write its report
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `usage: llmd <command> [flags]

commands:
  probe URL   scrape a vLLM /metrics endpoint twice and print the signals the scaler would use
  simulate    replay a request trace through simulated vLLM replicas and autoscaling policies
              (llmd simulate --service FILE --trace FILE [--policy all] [--json] [--plot out.png] [--csv out.csv])
  burst       send streaming completions to a vLLM (or any OpenAI-compatible) server at a fixed rate
              (llmd burst --url URL --rps N --duration D [--model ID] [--prompt-tokens P] [--max-tokens M] [--json])
  bench-scaling
              run the trace suite under every policy and fixed count and write the frontier and goal report
              (llmd bench-scaling --service FILE [--traces DIR] [--out DIR] [--case REGEXP] [--workers N])
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the process exit code: 0 success, 1 the command failed, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "probe":
		return probe(args[1:], stdout, stderr)
	case "simulate":
		return simulate(args[1:], stdout, stderr)
	case "burst":
		return burst(args[1:], stdout, stderr)
	case "bench-scaling":
		return benchScaling(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "llmd: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// command is a subcommand's flags and its way of failing: one line on stderr naming the command, and an
// exit code.
type command struct {
	name, usage    string
	fs             *flag.FlagSet
	stdout, stderr io.Writer
}

func newCommand(name, usage string, stdout, stderr io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by fail
	return &command{name: name, usage: usage, fs: fs, stdout: stdout, stderr: stderr}
}

func (c *command) fail(code int, format string, a ...any) int {
	fmt.Fprintf(c.stderr, "llmd "+c.name+": "+format+"\n", a...)
	return code
}

// parse parses args, which must all be flags. done means the command is over with code: help was
// printed (0) or the arguments are wrong (2).
func (c *command) parse(args []string) (code int, done bool) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(c.stdout, c.usage)
			return 0, true
		}
		return c.fail(2, "%v", err), true
	}
	if c.fs.NArg() > 0 {
		return c.fail(2, "unexpected argument %q", c.fs.Arg(0)), true
	}
	return 0, false
}
