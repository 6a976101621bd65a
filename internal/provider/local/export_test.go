package local

// Hook points of SubmitStep, for the crash tests of package local_test.
const (
	HookStarted  = hookStarted
	HookRecorded = hookRecorded
)

// SetSubmitHook makes p call hook at each hook point of SubmitStep. Set it
// before p is used.
func SetSubmitHook(p *Provider, hook func(point, stepID string, pid int)) { p.submitHook = hook }
