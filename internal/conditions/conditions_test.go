package conditions

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

func TestStateFollowsTheFirstFailingCondition(t *testing.T) {
	var list []metav1.Condition
	if state, _ := State(list); state != apiv2.StateProcessing {
		t.Errorf("no conditions: state %s, want Processing", state)
	}
	Set(&list, Accepted, metav1.ConditionTrue, ReasonAccepted, "ok", 1)
	Set(&list, ResolvedRefs, metav1.ConditionFalse, ReasonServiceNotFound, "spec.service: Service shop/api not found", 1)
	Set(&list, Programmed, metav1.ConditionFalse, ReasonNotApplied, "nothing applied", 1)
	state, description := State(list)
	if state != apiv2.StateError || description != "spec.service: Service shop/api not found" {
		t.Errorf("state %s %q, want Error with the ResolvedRefs message", state, description)
	}
	Set(&list, ResolvedRefs, metav1.ConditionTrue, ReasonResolved, "ok", 2)
	Set(&list, Programmed, metav1.ConditionTrue, ReasonProgrammed, "ok", 2)
	Set(&list, Ready, metav1.ConditionTrue, ReasonReady, "served", 2)
	if state, description := State(list); state != apiv2.StateReady || description != "served" {
		t.Errorf("state %s %q, want Ready", state, description)
	}
}

func TestSetKeepsTransitionTimeWhenStatusStays(t *testing.T) {
	var list []metav1.Condition
	Set(&list, Ready, metav1.ConditionFalse, ReasonNotReady, "a", 1)
	first := Find(list, Ready).LastTransitionTime
	Set(&list, Ready, metav1.ConditionFalse, ReasonNotReady, "b", 2)
	if got := Find(list, Ready); !got.LastTransitionTime.Equal(&first) || got.Message != "b" || got.ObservedGeneration != 2 {
		t.Errorf("condition after repeat: %+v", got)
	}
}
