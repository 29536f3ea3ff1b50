package operator

import (
	"context"
	"errors"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// gcPercent is the collector's current target.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func testCollector(backlog int, err error, verified *atomic.Int64, limit time.Duration) *startupCollector {
	return &startupCollector{
		percent:  40,
		backlog:  func(context.Context) (int, error) { return backlog, err },
		verified: func() int { return int(verified.Load()) },
		poll:     time.Millisecond,
		limit:    limit,
	}
}

// run starts the collector and returns a channel closed when Start returns.
func run(t *testing.T, s *startupCollector) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Start(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	return done
}

func TestTheStartupTargetHoldsUntilEveryAPIRuleIsVerified(t *testing.T) {
	before := gcPercent()
	var verified atomic.Int64
	s := testCollector(3, nil, &verified, time.Minute)
	s.lower()
	if got := gcPercent(); got != 40 {
		t.Fatalf("target %d after lower, want 40", got)
	}
	done := run(t, s)
	verified.Store(2)
	select {
	case <-done:
		t.Fatal("the target was restored with 2 of 3 APIRules verified")
	case <-time.After(50 * time.Millisecond):
	}
	if got := gcPercent(); got != 40 {
		t.Fatalf("target %d while APIRules wait, want 40", got)
	}
	verified.Store(3)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the target was not restored once every APIRule was verified")
	}
	if got := gcPercent(); got != before {
		t.Errorf("target %d after the first pass, want %d back", got, before)
	}
}

func TestTheStartupTargetIsRestoredAfterItsLimitOrWhenTheBacklogIsUnknown(t *testing.T) {
	before := gcPercent()
	var verified atomic.Int64
	for name, s := range map[string]*startupCollector{
		"a replica that never reconciles": testCollector(3, nil, &verified, 20*time.Millisecond),
		"no count of the backlog":         testCollector(0, errors.New("no informer"), &verified, time.Minute),
	} {
		s.lower()
		select {
		case <-run(t, s):
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the target was never restored", name)
		}
		if got := gcPercent(); got != before {
			t.Errorf("%s: target %d, want %d back", name, got, before)
		}
	}
}

func TestAGOGCOfTheEnvironmentIsKept(t *testing.T) {
	if newStartupCollector(nil, 50) == nil {
		t.Fatal("no startup collector without GOGC in the environment")
	}
	for _, percent := range []int{0, 100, 150} {
		if newStartupCollector(nil, percent) != nil {
			t.Errorf("a startup collector with a target of %d", percent)
		}
	}
	t.Setenv("GOGC", "80")
	if newStartupCollector(nil, 50) != nil {
		t.Error("a startup collector although GOGC is set")
	}
}
