package decision

// Mechanism names one part of the decision that can be switched off, to measure what it contributes (an
// ablation in the simulator's benchmark). The scaler always runs every mechanism.
type Mechanism string

// Mechanisms lists every mechanism in report order.
func Mechanisms() []Mechanism { return nil }

// Option configures an Autoscaler.
type Option func(*Autoscaler)

// Without switches mechanisms off, for ablations; unknown names are ignored by the decision but refused by
// ValidateMechanisms.
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
