// Command vllm-sim is a stand-in for a vLLM server, for tests, benchmarks and demos without a GPU: it
// serves vLLM's OpenAI-compatible API, /health and /metrics (vLLM's metric names), and answers with filler
// text at the pace of a simulated GPU (package vllmsim), so that queues, KV-cache pressure and decode
// throughput behave as a real replica's would under the same load.
//
//	vllm-sim --preset a10g --startup-delay 5s --speed 10
//
// It also takes vLLM's server command line unchanged (vllm-sim MODEL --served-model-name NAME --dtype ...),
// modelling --model, --served-model-name, --host, --port, --max-num-seqs, --max-num-batched-tokens and
// --block-size and ignoring the rest (logged once), so that the operator runs it in place of vLLM
// (--vllm-image). Started as python3 (the image's link), it stands in for the operator's model download.
//
// Bad flags print one line on stderr and exit with status 2. SIGTERM or SIGINT stops accepting
// connections and lets in-flight requests finish, for at most --shutdown-timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/llm-d/llm-d/version"
	"github.com/llm-d/llm-d/vllmsim/server"
)

func main() {
	if filepath.Base(os.Args[0]) == downloaderName {
		os.Exit(simulateDownload(os.Args[1:], os.Getenv, os.Stderr))
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}

// run is main with its environment passed in; it returns the exit status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	o, fs, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "Usage: vllm-sim [flags]")
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "Presets (vllmsim.Params; see the package documentation for where each number comes from):")
		for _, name := range presetNames() {
			fmt.Fprintf(stderr, "  %s: %+v\n", name, presets[name]())
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "vllm-sim: %s (see vllm-sim -h)\n", oneLine(err))
		return 2
	}
	if o.printVersion {
		fmt.Fprintf(stderr, "vllm-sim %s (revision %s)\n", version.Version, version.Revision)
		return 0
	}
	logCfg := zap.NewProductionConfig()
	logCfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	logCfg.EncoderConfig.EncodeDuration = zapcore.StringDurationEncoder
	log, err := logCfg.Build()
	if err != nil {
		fmt.Fprintln(stderr, "vllm-sim:", err)
		return 1
	}
	defer func() { _ = log.Sync() }()

	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		log.Error("cannot listen", zap.Error(err))
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := serve(ctx, o, ln, log); err != nil {
		log.Error("serving failed", zap.Error(err))
		return 1
	}
	return 0
}

// serve serves the simulator on ln until ctx is done, then drains in-flight requests for at most
// o.shutdownTimeout.
func serve(ctx context.Context, o options, ln net.Listener, log *zap.Logger) error {
	s, err := server.New(o.server)
	if err != nil {
		return err
	}
	// The engine outlives the listener: draining requests still need tokens.
	engineCtx, stopEngine := context.WithCancel(context.Background())
	engineDone := make(chan error, 1)
	go func() { engineDone <- s.Run(engineCtx) }()
	defer func() {
		stopEngine()
		<-engineDone
	}()

	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	p := o.server.Params
	log.Info("serving a simulated vLLM",
		zap.String("address", ln.Addr().String()), zap.String("model", o.server.Model),
		zap.String("preset", o.preset), zap.Float64("speed", o.server.Speed),
		zap.Duration("readyAfter", time.Duration(float64(p.StartupDelay)/o.server.Speed)),
		zap.Int("maxNumSeqs", p.MaxNumSeqs), zap.Int("kvCacheTokens", p.KVCacheTokens),
		zap.Bool("legacyMetrics", o.server.LegacyMetrics), zap.String("version", version.Version))
	if len(o.ignored) > 0 || len(o.aliases) > 0 {
		log.Info("ignoring what vllm-sim does not model: these vLLM flags, and served model names after the first",
			zap.Strings("flags", o.ignored), zap.Strings("servedModelNames", o.aliases))
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: no new connections, finishing in-flight requests", zap.Duration("timeout", o.shutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("in-flight requests did not finish in time; closing their connections", zap.Error(err))
		_ = srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}
