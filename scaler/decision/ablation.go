package decision

// Mechanism names one part of the decision that can be switched off, to measure what it contributes (an
// ablation in the simulator's benchmark). The scaler always runs every mechanism.
type Mechanism string

const (
	// MechanismCapacity is the capacity model (capacity.go); off, the queue and throughput rules decide alone.
	MechanismCapacity Mechanism = "capacity"
	// MechanismCalibration is the capacity prior's calibration from saturated pods (calibration.go); off,
	// the prior is used as it is.
	MechanismCalibration Mechanism = "calibration"
	// MechanismHeadroom is the burst headroom (headroom.go); off, the capacity model sizes for the current
	// demand only.
	MechanismHeadroom Mechanism = "headroom"
	// MechanismRisingLevel measures growth from the round's own rate when it is above the level (a rise
	// already under way, headroom.go); off, from the level alone.
	MechanismRisingLevel Mechanism = "rising-level"
	// MechanismBurstRatio remembers a growth's ratio only when the level falls back after it (headroom.go);
	// off, every growth's ratio is remembered.
	MechanismBurstRatio Mechanism = "burst-ratio"
	// MechanismSilenceReturn learns from returns after a silence (headroom.go); off, a silence teaches
	// nothing.
	MechanismSilenceReturn Mechanism = "silence-return"
	// MechanismBurstForm leaves the ratio out when bursts at different levels rose alike (headroom.go);
	// off, the headroom covers both the ratio and the rise.
	MechanismBurstForm Mechanism = "burst-form"
	// MechanismKVHeadroom is the KV-cache headroom rule (kvcache.go).
	MechanismKVHeadroom Mechanism = "kv-headroom"
)

// Mechanisms lists every mechanism in report order.
func Mechanisms() []Mechanism {
	return []Mechanism{MechanismCapacity, MechanismCalibration, MechanismHeadroom, MechanismRisingLevel,
		MechanismBurstRatio, MechanismSilenceReturn, MechanismBurstForm, MechanismKVHeadroom}
}

// Option configures an Autoscaler.
type Option func(*Autoscaler)

// Without switches mechanisms off, for ablations; names Mechanisms does not list are ignored.
func Without(ms ...Mechanism) Option {
	return func(a *Autoscaler) {
		if a.off == nil {
			a.off = map[Mechanism]bool{}
		}
		for _, m := range ms {
			a.off[m] = true
		}
	}
}

func (a *Autoscaler) on(m Mechanism) bool { return !a.off[m] }
