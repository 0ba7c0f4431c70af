package main

import (
	"fmt"
	"io"
)

// downloaderName is the name vllm-sim answers to as the model downloader: the vllm-sim image links
// /usr/bin/python3 to vllm-sim (images.VLLMSim).
const downloaderName = "python3"

// simulateDownload stands in for the model download of the operator's init container, which runs
// `python3 -c <script>` in the vLLM image with the model in MODEL_ID: it says what a vLLM image would fetch
// and succeeds, without running the script or reaching the network, so that the operator's Deployment runs
// unchanged with --vllm-image set to vllm-sim. Anything else is refused: the image has no Python.
func simulateDownload(args []string, getenv func(string) string, stderr io.Writer) int {
	model := getenv("MODEL_ID")
	if len(args) != 2 || args[0] != "-c" || model == "" {
		fmt.Fprintln(stderr, "vllm-sim: this image has no Python: python3 only stands in for the llm-d operator's "+
			"model download (python3 -c SCRIPT, with MODEL_ID set)")
		return 2
	}
	fmt.Fprintf(stderr, "vllm-sim: simulated the download of %s into HF_HOME=%s: nothing fetched, the simulated server needs no weights\n",
		model, getenv("HF_HOME"))
	return 0
}
