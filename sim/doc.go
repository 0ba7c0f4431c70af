// Package sim replays a request trace through a model of vLLM replicas and of the control path that scales
// them (scrapes, the llm-d scaler's decision code or KEDA's Prometheus scaler, the HPA and its behavior, pod
// startup), and reports SLO attainment against GPU-hours.
//
// It is pure: plain structs in and out, a simulated clock (time.Duration since the trace's first request),
// no goroutines and no I/O. The same inputs and seed give the same Result, bit for bit. The replica model
// is package vllmsim; the llmd policy calls package decision exactly as the scaler does, so a rule changed
// there changes the simulation too.
//
// RunPool runs several services, each with its own trace, policy and Deployment, on one clock and one
// LLMInferencePool budget, with package pool dividing the budget every decision cycle as the scaler does;
// RunSplit is its baseline, each service alone on a fixed part of the budget.
package sim
