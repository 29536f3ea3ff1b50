package operator

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/metrics"
)

// startupCollector runs Go's garbage collector with a lower target (GOGC) from the process's
// start until the operator has verified every APIRule its cache held when it synced, and then
// puts the target back.
//
// That first pass is when the process allocates fastest while its heap is largest: it
// receives every object of the cluster and reconciles every APIRule within seconds. The
// collector lets the heap grow to twice what it marked live before it collects again, and
// what it marks includes what was allocated while it marked, so the heap of a restarted
// operator grew to about twice that of a settled one with the same cache (docs/performance.md:
// 404 to 458 MiB at 10,000 APIRules against 273). After the first pass the operator allocates
// only as APIRules change, and the default target costs least CPU.
type startupCollector struct {
	// percent is the target until the first pass is done.
	percent int
	// backlog counts the APIRules the synced cache holds; verified those reconciled so far.
	backlog  func(context.Context) (int, error)
	verified func() int
	// poll is how often the progress is read; limit bounds the wait (a replica that is not
	// the leader never reconciles).
	poll, limit time.Duration
	// restore puts the target back; set by lower.
	restore func()
}

// newStartupCollector is the startup collector of the manager's cache, or nil when GOGC is set
// in the environment (the operator then keeps what it was given) or percent is not below 100.
func newStartupCollector(c cache.Cache, percent int) *startupCollector {
	if _, set := os.LookupEnv("GOGC"); set || percent <= 0 || percent >= 100 {
		return nil
	}
	return &startupCollector{
		percent: percent,
		backlog: func(ctx context.Context) (int, error) {
			informer, err := c.GetInformer(ctx, &apiv2.APIRule{})
			if err != nil {
				return 0, err
			}
			shared, ok := informer.(toolscache.SharedIndexInformer)
			if !ok {
				return 0, fmt.Errorf("the APIRule informer is a %T, which cannot count its objects", informer)
			}
			return len(shared.GetStore().ListKeys()), nil
		},
		verified: metrics.KnownAPIRules,
		poll:     250 * time.Millisecond,
		limit:    5 * time.Minute,
	}
}

// lower sets the startup target at once, so that the caches' first lists have it too.
func (s *startupCollector) lower() {
	previous := debug.SetGCPercent(s.percent)
	s.restore = func() { debug.SetGCPercent(previous) }
}

// Start runs once the caches have synced (the manager starts runnables that need no leader
// after its caches) and puts the target back when as many APIRules have been verified as the
// synced cache held, when limit has passed, or when the manager stops. The count is a
// measure, not a list: an APIRule created meanwhile counts too (the target comes back a
// little early), one deleted or being finalized does not (it waits for the limit); either
// costs some CPU or memory for a while, nothing else.
func (s *startupCollector) Start(ctx context.Context) error {
	if s.restore == nil {
		s.lower()
	}
	defer s.restore()
	started := time.Now()
	backlog, err := s.backlog(ctx)
	if err != nil {
		// Not a reason to stop the operator: the target goes back now.
		log.FromContext(ctx).Error(err, "counting the APIRules to verify after the start; the collector's target is restored at once")
		return nil
	}
	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	for s.verified() < backlog && time.Since(started) < s.limit {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
	log.FromContext(ctx).Info("verified the APIRules after the start; the collector's target is restored",
		"apirules", backlog, "after", time.Since(started).Round(time.Millisecond))
	return nil
}

// NeedLeaderElection is false: every replica's caches fill at its start.
func (s *startupCollector) NeedLeaderElection() bool { return false }
