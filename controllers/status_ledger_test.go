package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

func TestStatusLedgerForgetsAWriteOnceTheCacheShowsIt(t *testing.T) {
	written := &apiv2.APIRule{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders", UID: "first", ResourceVersion: "12"}}
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
		if _, known := ledger.get(written); !known {
			t.Fatalf("forgot the write on seeing %s at %s: the cache does not show it yet", stale.UID, stale.ResourceVersion)
		}
	}
	ledger.caughtUp(cached("first", "12"))
	if _, known := ledger.get(written); known {
		t.Fatal("still holds the write after the cache showed the version it made")
	}
}
