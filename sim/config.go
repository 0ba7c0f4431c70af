package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/llm-d/llm-d/epp"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/vllmsim"
)

// Base is the simulator's control tick: every control interval must be a multiple of it.
const Base = 5 * time.Second

// Config is everything a run depends on besides the trace.
type Config struct {
	// Replica is the vLLM model of one pod (vllmsim.A10GLlama8B by default in the CLI).
	Replica vllmsim.Params
	// Policy is the service's autoscaling block as the scaler reads it (discovery.PolicyFor); its min and
	// max bound every policy, its targets drive llmd.
	Policy decision.Policy
	// InitialReplicas is the Deployment's size when the trace starts, all pods ready; 0 means MinReplicas.
	InitialReplicas int32
	// SLOTTFT is the time-to-first-token objective (2 s if 0); SLOTarget the share of requests that must meet
	// it for a static size to count as enough (0.99 if 0).
	SLOTTFT   time.Duration
	SLOTarget float64
	// QueueTarget is hpa-queue's AverageValue target on vllm:num_requests_waiting (5 if 0).
	QueueTarget float64
	// Control intervals, multiples of Base; 0 takes the default in brackets. ScrapeInterval: the llm-d
	// scaler's scrape-and-decide round [5 s]. HPASync: the HPA's sync period [15 s]. PromScrape:
	// Prometheus' scrape interval [15 s]. KEDAPoll: how stale KEDA's reading of Prometheus may be [30 s].
	ScrapeInterval, HPASync, PromScrape, KEDAPoll time.Duration
	// BoundStep is the interval of the lower bound's plan [60 s].
	BoundStep time.Duration
	// SeriesStep is the time series' resolution [15 s].
	SeriesStep time.Duration
	// Warmup replays the trace's first Warmup before it, unmeasured, so that the reactive policies (llmd and
	// hpa-queue) meet the trace in the steady state they would be in on a live cluster instead of at
	// minReplicas with an empty history: a cold start would charge them for the trace's own edge.
	Warmup time.Duration
	// Seed drives the routing's random choices: the Service's pod, the picker's ties.
	Seed uint64
	// Off switches decision mechanisms off in the llmd policy, for ablations.
	Off []decision.Mechanism
	// PriorSpeed, when not 0 or 1, makes llmd's capacity prior that many times faster than the replicas
	// really are: how the scaler fares with a GPU table that is wrong.
	PriorSpeed float64
	// Routing is how a request reaches a pod: RoutingRandom ("" too), the Service's kube-proxy, or
	// RoutingPicker, the Gateway API Inference Extension's endpoint picker behind a gateway.
	Routing string
	// PickerScoring is the picker's scoring with RoutingPicker; the zero value means epp.DefaultScoring.
	PickerScoring epp.Scoring
	// TokenAware is the token-aware recipe's calibration; zero fields are calibrated as its guide says
	// (see CalibrateTokenAware).
	TokenAware TokenAwareCalibration
}

// WithDefaults is c with every zero setting at its default (a 2 s SLO, 5 s scrapes, random routing, ...).
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.SLOTTFT, 2*time.Second)
	def(&c.ScrapeInterval, 5*time.Second)
	def(&c.HPASync, 15*time.Second)
	def(&c.PromScrape, 15*time.Second)
	def(&c.KEDAPoll, 30*time.Second)
	def(&c.BoundStep, 60*time.Second)
	def(&c.SeriesStep, 15*time.Second)
	if c.Routing == "" {
		c.Routing = RoutingRandom
	}
	if c.PickerScoring == (epp.Scoring{}) {
		c.PickerScoring = epp.DefaultScoring()
	}
	if c.SLOTarget == 0 {
		c.SLOTarget = 0.99
	}
	if c.QueueTarget == 0 {
		c.QueueTarget = 5
	}
	return c
}

// Validate says what is wrong with a configuration (after defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := c.Replica.Validate(); err != nil {
		return fmt.Errorf("replica model: %w", err)
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	for name, d := range map[string]time.Duration{"ScrapeInterval": c.ScrapeInterval, "HPASync": c.HPASync,
		"PromScrape": c.PromScrape, "KEDAPoll": c.KEDAPoll, "BoundStep": c.BoundStep, "SeriesStep": c.SeriesStep} {
		if d <= 0 || d%Base != 0 {
			return fmt.Errorf("%s is %s: it must be a positive multiple of %s", name, d, Base)
		}
	}
	if c.SLOTarget <= 0 || c.SLOTarget > 1 {
		return fmt.Errorf("SLOTarget is %v: it must be in (0, 1]", c.SLOTarget)
	}
	if c.Warmup < 0 || c.Warmup%Base != 0 {
		return fmt.Errorf("Warmup is %s: it must be a multiple of %s", c.Warmup, Base)
	}
	if c.InitialReplicas < 0 {
		return fmt.Errorf("InitialReplicas is negative")
	}
	if !slices.Contains(Routings, c.Routing) {
		return fmt.Errorf("Routing is %q: want one of %q", c.Routing, Routings)
	}
	if err := c.PickerScoring.Validate(); err != nil {
		return fmt.Errorf("PickerScoring: %w", err)
	}
	return nil
}

func (c *Config) initial() int32 {
	if c.InitialReplicas > 0 {
		return min(max(c.InitialReplicas, c.Policy.MinReplicas), c.Policy.MaxReplicas)
	}
	return c.Policy.MinReplicas
}
