package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/metrics"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// report collects the conditions of one reconcile; writeStatus writes them once, at the end.
type report struct {
	generation int64
	conditions []metav1.Condition
}

func newReport(rule *apiv2.APIRule) *report {
	return &report{
		generation: rule.Generation,
		conditions: append([]metav1.Condition(nil), rule.Status.Conditions...),
	}
}

func (r *report) set(t conditions.Type, status metav1.ConditionStatus, reason conditions.Reason, message string) {
	conditions.Set(&r.conditions, t, status, reason, message, r.generation)
}

// translated records Accepted and ResolvedRefs from the translation's findings. When there
// are any, nothing is applied and the objects of the last good generation keep serving.
func (r *report) translated(findings translate.Findings) {
	errs := findings.Errors()
	r.fromFindings(conditions.Accepted, errs.For(conditions.Accepted), conditions.ReasonAccepted, "The spec is valid.")
	r.fromFindings(conditions.ResolvedRefs, errs.For(conditions.ResolvedRefs), conditions.ReasonResolved,
		"The Gateway, every backend Service and every extension provider were found.")
	if warnings := findings.Warnings(); len(warnings) > 0 && len(errs.For(conditions.Accepted)) == 0 {
		r.set(conditions.Accepted, metav1.ConditionTrue, conditions.ReasonAcceptedWithWarnings, warnings.Summary())
	}
	if len(errs) > 0 {
		r.set(conditions.Programmed, metav1.ConditionFalse, conditions.ReasonNotApplied,
			"Nothing was applied for this generation; objects applied for an earlier generation, if any, keep serving until the problems are fixed.")
	}
}

func (r *report) fromFindings(t conditions.Type, findings translate.Findings, okReason conditions.Reason, okMessage string) {
	if len(findings) == 0 {
		r.set(t, metav1.ConditionTrue, okReason, okMessage)
		return
	}
	r.set(t, metav1.ConditionFalse, findings[0].Reason, findings.Summary())
}

// withdrawn records that the APIRule's objects were removed because an older owner holds
// some of its hosts.
func (r *report) withdrawn(hosts []string) {
	r.set(conditions.Programmed, metav1.ConditionFalse, conditions.ReasonWithdrawn,
		fmt.Sprintf("The routes and policies of this APIRule were removed: %s are held by an older owner.", strings.Join(hosts, ", ")))
}

func (r *report) programFailed(err error) {
	r.set(conditions.Programmed, metav1.ConditionFalse, conditions.ReasonApplyFailed, err.Error())
}

func (r *report) programmed() {
	r.set(conditions.Programmed, metav1.ConditionTrue, conditions.ReasonProgrammed, "All Istio objects are applied.")
}

// status returns the status the report describes, with Ready and the Kyma-compatible state
// derived from the other conditions.
func (r *report) status(previous apiv2.APIRuleStatus) apiv2.APIRuleStatus {
	ready, reason, message := metav1.ConditionTrue, conditions.ReasonReady, "The APIRule is served as specified."
	for _, t := range []conditions.Type{conditions.Accepted, conditions.ResolvedRefs, conditions.Programmed} {
		if c := conditions.Find(r.conditions, t); c == nil || c.Status != metav1.ConditionTrue {
			ready, reason = metav1.ConditionFalse, conditions.ReasonNotReady
			if c != nil {
				message = fmt.Sprintf("%s: %s", t, c.Message)
			} else {
				message = fmt.Sprintf("%s is not known yet.", t)
			}
			break
		}
	}
	r.set(conditions.Ready, ready, reason, message)

	state, description := conditions.State(r.conditions)
	return apiv2.APIRuleStatus{
		State:              state,
		Description:        description,
		LastProcessedTime:  previous.LastProcessedTime,
		ObservedGeneration: r.generation,
		Conditions:         r.conditions,
	}
}

// writeStatus writes the status only when it changed, and emits an event when the state does.
func (r *APIRuleReconciler) writeStatus(ctx context.Context, rule *apiv2.APIRule, rep *report) error {
	next := rep.status(rule.Status)
	metrics.SetState(ownerOf(rule), string(next.State))
	if equality.Semantic.DeepEqual(next, rule.Status) {
		return nil
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	next.LastProcessedTime = &now

	previousState := rule.Status.State
	// The optimistic lock makes a write based on a stale cached APIRule fail instead of
	// repeating a status (and its event) that a previous reconcile already wrote.
	patch := client.MergeFromWithOptions(rule.DeepCopy(), client.MergeFromWithOptimisticLock{})
	rule.Status = next
	if err := r.Client.Status().Patch(ctx, rule, patch); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	if next.State != previousState && r.Recorder != nil {
		eventType := "Normal"
		if next.State == apiv2.StateError || next.State == apiv2.StateWarning {
			eventType = "Warning"
		}
		r.Recorder.Eventf(rule, nil, eventType, string(next.State), "Reconcile", "%s", next.Description)
	}
	return nil
}
