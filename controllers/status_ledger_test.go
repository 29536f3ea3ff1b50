package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

func TestStatusLedgerForgetsAWriteOnceTheCacheShowsIt(t *testing.T) {
	written := &apiv2.APIRule{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders", UID: "first", ResourceVersion: "12"}}
	key := ownerOf(written)
	var ledger statusLedger
	ledger.put(written, apiv2.APIRuleStatus{State: apiv2.StateReady, ObservedGeneration: 2})

	cached := func(uid k8stypes.UID, resourceVersion string) *apiv2.APIRule {
		rule := written.DeepCopy()
		rule.UID, rule.ResourceVersion = uid, resourceVersion
		return rule
	}
	for _, stale := range []*apiv2.APIRule{
		cached("first", "11"),  // the cache before the write
		cached("second", "12"), // another APIRule of the same name
	} {
		ledger.caughtUp(stale)
		if !ledger.read(key).of(written).known {
			t.Fatalf("forgot the write on seeing %s at %s: the cache does not show it yet", stale.UID, stale.ResourceVersion)
		}
	}
	if ledger.read(key).of(cached("second", "13")).known {
		t.Error("the write to another APIRule of the same name is taken for this one's")
	}
	ledger.caughtUp(cached("first", "12"))
	if ledger.read(key).of(written).known {
		t.Fatal("still holds the write after the cache showed the version it made")
	}
}

// A reconcile that read the ledger before its stale cache copy keeps the write it read, even
// when the cache catches up and the entry is dropped while the reconcile runs: the status it
// computes equals the stale copy but not the write, so it must still write.
func TestAReconcileKeepsTheLedgerEntryItBeganWith(t *testing.T) {
	before := apiv2.APIRuleStatus{State: apiv2.StateReady, Description: "served", ObservedGeneration: 1}
	after := apiv2.APIRuleStatus{State: apiv2.StateWarning, Description: "a peer took the host", ObservedGeneration: 1}
	written := &apiv2.APIRule{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders", UID: "u", ResourceVersion: "20"}}
	var ledger statusLedger
	ledger.put(written, after)

	entry := ledger.read(ownerOf(written)) // the reconcile begins
	stale := written.DeepCopy()
	stale.ResourceVersion, stale.Status = "19", before // its cache copy predates the write
	ledger.caughtUp(written)                           // the cache catches up meanwhile

	last := entry.of(stale)
	if !last.known {
		t.Fatal("the reconcile lost the write it began with")
	}
	if !needsWrite(before, stale.Status, last) {
		t.Error("computing the stale copy's status again is not written back over the later write")
	}
	if needsWrite(before, stale.Status, lastWrite{}) {
		t.Error("a status equal to the cached one is written although no later write is known")
	}
}
