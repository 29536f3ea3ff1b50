package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/metrics"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// maxWarnings is how many warnings status lists (the CRD's limit); the rest are counted in the
// Accepted message.
const maxWarnings = 64

// report collects the conditions of one reconcile; the reconciler writes them once, from a
// deferred call, whatever phase failed.
type report struct {
	generation int64
	conditions []metav1.Condition
	warnings   []apiv2.APIRuleWarning
	// unknown, when set, is why the outcome of this reconcile is not known: a failed read of
	// the cluster. Ready is then Unknown with this reason.
	unknown *metav1.Condition
	// hosts, gateway and objects say what serves: unchanged from the last status until this
	// reconcile learns otherwise.
	hosts   []string
	gateway string
	objects []apiv2.GeneratedObject
}

func newReport(rule *apiv2.APIRule, last lastWrite) *report {
	// Start from the newest status known: the cache may not show this process's last write
	// yet, and a reconcile working from an older one would undo it (a withdrawal's reason).
	status := rule.Status
	if last.known && last.status.ObservedGeneration >= status.ObservedGeneration {
		status = last.status
	}
	return &report{
		generation: rule.Generation,
		conditions: append([]metav1.Condition(nil), status.Conditions...),
		warnings:   status.Warnings,
		hosts:      status.Hosts,
		gateway:    status.Gateway,
		objects:    status.Objects,
	}
}

// gathered records what the cluster shows serving, the hosts the APIRule's route has now, and
// the Gateway the APIRule binds to, whether it exists or not.
func (r *report) gathered(in model.Input) {
	r.hosts = in.ServedHosts
	r.gateway = ""
	if gw := model.MTLSGateway(in.APIRule, in.Options); gw != nil {
		r.gateway = gw.Namespace + "/" + gw.Name
	} else if ref, ok := model.GatewayRef(in.APIRule, in.Options); ok {
		r.gateway = ref.String()
	}
}

func (r *report) set(t conditions.Type, status metav1.ConditionStatus, reason conditions.Reason, message string) {
	conditions.Set(&r.conditions, t, status, reason, message, r.generation)
}

// checked records Accepted, ResolvedRefs and the warnings from the findings. When there are
// errors, nothing is applied and the objects of the last good generation keep serving.
func (r *report) checked(findings check.Findings) {
	errs := findings.Errors()
	r.fromFindings(conditions.Accepted, errs.For(conditions.Accepted), conditions.ReasonAccepted, "The spec is valid.")
	r.fromFindings(conditions.ResolvedRefs, errs.For(conditions.ResolvedRefs), conditions.ReasonResolved,
		"The Gateway, every backend Service and every extension provider were found.")
	warnings := findings.Warnings()
	r.warnings = nil
	for i, w := range warnings {
		if i == maxWarnings {
			break
		}
		r.warnings = append(r.warnings, apiv2.APIRuleWarning{Reason: string(w.Reason), Field: w.Field.String(), Message: w.Message})
	}
	if len(warnings) > 0 && len(errs.For(conditions.Accepted)) == 0 {
		r.set(conditions.Accepted, metav1.ConditionTrue, conditions.ReasonAcceptedWithWarnings, warnings.Summary())
	}
	if len(errs) > 0 {
		if c := conditions.Find(r.conditions, conditions.Programmed); c != nil && c.Reason == string(conditions.ReasonWithdrawn) && len(r.hosts) == 0 {
			// Still withdrawn: the reason says why nothing serves until the problems are fixed.
			r.set(conditions.Programmed, metav1.ConditionFalse, conditions.ReasonWithdrawn, c.Message)
			return
		}
		message := "Nothing was applied for this generation; the objects of an earlier generation keep serving until the problems are fixed."
		if len(r.hosts) == 0 {
			message = "Nothing was applied for this generation, and nothing of an earlier one serves."
		}
		r.set(conditions.Programmed, metav1.ConditionFalse, conditions.ReasonNotApplied, message)
	}
}

func (r *report) fromFindings(t conditions.Type, findings check.Findings, okReason conditions.Reason, okMessage string) {
	if len(findings) == 0 {
		r.set(t, metav1.ConditionTrue, okReason, okMessage)
		return
	}
	r.set(t, metav1.ConditionFalse, findings[0].Reason, findings.Summary())
}

// readFailed records that the cluster could not be read, so nothing is known of this
// reconcile's outcome: the previous conditions stay, Ready becomes Unknown.
func (r *report) readFailed(err error) {
	r.unknown = &metav1.Condition{Reason: string(conditions.ReasonReadFailed), Message: "Reading the cluster failed; retrying: " + err.Error()}
}

// withdrawn records that the APIRule's objects were removed, and why: another APIRule
// prevails over what it asks for.
func (r *report) withdrawn(why string) {
	r.set(conditions.Programmed, metav1.ConditionFalse, conditions.ReasonWithdrawn,
		fmt.Sprintf("The routes and policies of this APIRule were removed: %s.", why))
	r.hosts, r.objects = nil, nil
}

func (r *report) programFailed(reason conditions.Reason, err error) {
	r.set(conditions.Programmed, metav1.ConditionFalse, reason, err.Error())
}

// programmed records that the objects serve: the route's hosts and every object, in the
// order they were applied.
func (r *report) programmed(objects translate.Objects) {
	r.set(conditions.Programmed, metav1.ConditionTrue, conditions.ReasonProgrammed, "All Istio objects are applied.")
	r.hosts = objects.VirtualServices[0].Spec.Hosts
	r.objects = nil
	for _, obj := range objects.All() {
		r.objects = append(r.objects, apiv2.GeneratedObject{
			Kind: obj.GetObjectKind().GroupVersionKind().Kind, Namespace: obj.GetNamespace(), Name: obj.GetName(),
		})
	}
}

// status returns the status the report describes, with Ready and the Kyma-compatible state
// derived from the other conditions. lastProcessedTime is left to the writer.
func (r *report) status() apiv2.APIRuleStatus {
	ready, reason, message := metav1.ConditionTrue, conditions.ReasonReady, "The APIRule is served as specified."
	for _, t := range []conditions.Type{conditions.Accepted, conditions.ResolvedRefs, conditions.Programmed} {
		// Not ready for the reason of the first condition that is not true, so that
		// kubectl's REASON column says what to fix.
		if c := conditions.Find(r.conditions, t); c == nil || c.Status != metav1.ConditionTrue {
			ready, reason = metav1.ConditionFalse, conditions.ReasonNotReady
			if c != nil {
				reason, message = conditions.Reason(c.Reason), fmt.Sprintf("%s: %s", t, c.Message)
			} else {
				message = fmt.Sprintf("%s is not known yet.", t)
			}
			break
		}
	}
	if r.unknown != nil {
		ready, reason, message = metav1.ConditionUnknown, conditions.Reason(r.unknown.Reason), r.unknown.Message
	}
	r.set(conditions.Ready, ready, reason, message)

	state, description := conditions.State(r.conditions)
	return apiv2.APIRuleStatus{
		State:              state,
		Description:        description,
		ObservedGeneration: r.generation,
		Conditions:         r.conditions,
		Hosts:              r.hosts,
		Gateway:            r.gateway,
		Objects:            r.objects,
		Warnings:           r.warnings,
	}
}

// statusLedger remembers the status this process last wrote for each APIRule until the cache
// shows that write. A cache older than the write would otherwise be taken for the truth: a
// write that is needed would be skipped (the cache shows the status before the last write,
// which equals the new one) and the status of the last write left in place.
type statusLedger struct {
	mu      sync.Mutex
	written map[types.NamespacedName]writtenStatus
}

type writtenStatus struct {
	uid    types.UID
	status apiv2.APIRuleStatus
	// resourceVersion is the APIRule's after the write: the cache has caught up once it
	// shows this version, and every later one it shows is newer still.
	resourceVersion string
}

// lastWrite is this process's last status write to one APIRule, as the ledger held it when a
// reconcile began.
type lastWrite struct {
	status apiv2.APIRuleStatus
	known  bool
}

// read is the ledger's entry for an APIRule. A reconcile reads it before it reads the APIRule
// from the cache: an entry is dropped only once the cache shows the write, so when the ledger
// no longer holds it, the cache read that follows shows the write or something newer. Read
// after the cache, the entry could be dropped in between, and the reconcile would work from a
// cache older than the write with nothing to tell it so.
func (l *statusLedger) read(key types.NamespacedName) writtenStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written[key]
}

// of is the entry as the last write to rule: unknown when it was written to another APIRule
// of the same name, or not at all.
func (w writtenStatus) of(rule *apiv2.APIRule) lastWrite {
	return lastWrite{status: w.status, known: w.uid != "" && w.uid == rule.UID}
}

func (l *statusLedger) put(rule *apiv2.APIRule, status apiv2.APIRuleStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written == nil {
		l.written = map[types.NamespacedName]writtenStatus{}
	}
	l.written[ownerOf(rule)] = writtenStatus{uid: rule.UID, status: status, resourceVersion: rule.ResourceVersion}
}

// caughtUp forgets the write to an APIRule once the cache shows the version it made: from
// then on the cache is as new as the ledger. Without it, the ledger would hold a status for
// every APIRule this process ever wrote (13 MB at 10,000 APIRules, docs/performance.md). An
// entry whose version the cache never shows (it relisted after a gap in its watch and skipped
// that version) stays until the APIRule's next write or deletion.
func (l *statusLedger) caughtUp(rule *apiv2.APIRule) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := ownerOf(rule)
	if w, ok := l.written[key]; ok && w.uid == rule.UID && w.resourceVersion == rule.ResourceVersion {
		delete(l.written, key)
	}
}

func (l *statusLedger) forget(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.written, key)
}

// needsWrite: the status computed differs from the cached one or from this process's last
// write, either of which may be what the API server holds.
func needsWrite(next, cached apiv2.APIRuleStatus, last lastWrite) bool {
	return !sameStatus(next, cached) || (last.known && !sameStatus(next, last.status))
}

// sameStatus compares two statuses without lastProcessedTime, which only a write changes.
func sameStatus(a, b apiv2.APIRuleStatus) bool {
	a.LastProcessedTime, b.LastProcessedTime = nil, nil
	return equality.Semantic.DeepEqual(a, b)
}

// writeStatus writes the report's status unless both the cached APIRule and this process's
// last write already hold it. It replaces the whole status (StatusPatch), so every field is
// what this reconcile computed, whatever the cache showed. The state metric and the event
// follow a successful write only.
func (r *APIRuleReconciler) writeStatus(ctx context.Context, rule *apiv2.APIRule, rep *report, last lastWrite) error {
	next, err := asStored(rep.status())
	if err != nil {
		return err
	}
	metrics.CountOutcome(summaryReason(next))
	previous := rule.Status
	if last.known {
		previous = last.status
	}
	if !needsWrite(next, rule.Status, last) {
		metrics.SetState(ownerOf(rule), string(next.State))
		return nil
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	next.LastProcessedTime = &now
	patch, err := StatusPatch(rule.UID, next)
	if err != nil {
		return err
	}
	if err := r.Client.Status().Patch(ctx, rule, patch, client.FieldOwner(ownership.FieldManager)); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	// The patch has set rule's resource version to the one the write made.
	r.ledger.put(rule, next)
	// The cache may have shown the write before it was recorded: then no later event would.
	if cached := (&apiv2.APIRule{}); r.Client.Get(ctx, ownerOf(rule), cached) == nil {
		r.ledger.caughtUp(cached)
	}
	rule.Status = next
	metrics.SetState(ownerOf(rule), string(next.State))
	reason, changed := eventReason(previous, next)
	if changed {
		ctrl.LoggerFrom(ctx).Info("status", "state", next.State, "reason", reason, "description", next.Description)
	}
	if changed && r.Recorder != nil {
		eventType := "Normal"
		if next.State == apiv2.StateError || next.State == apiv2.StateWarning {
			eventType = "Warning"
		}
		r.Recorder.Eventf(rule, nil, eventType, reason, "Reconcile", "%s", next.Description)
	}
	return nil
}

// eventReason says whether a status change is worth an Event, and its reason. The policy
// (docs/status.md): an Event when the APIRule enters an error or a warning, moves from one
// reason to another, or comes back to Ready; none when a new APIRule becomes Ready, which
// kubectl shows in its columns and which would cost every APIRule a write.
func eventReason(previous, next apiv2.APIRuleStatus) (string, bool) {
	before, now := summaryReason(previous), summaryReason(next)
	if now == before || (before == "" && next.State == apiv2.StateReady) {
		return "", false
	}
	return now, true
}

// summaryReason is the reason an APIRule's status is in its state: the Ready condition's when
// it is not ready, the first warning's when it is served with warnings, Ready otherwise; ""
// before the operator first wrote a status.
func summaryReason(status apiv2.APIRuleStatus) string {
	ready := conditions.Find(status.Conditions, conditions.Ready)
	switch {
	case ready == nil:
		return ""
	case ready.Status != metav1.ConditionTrue:
		return ready.Reason
	case len(status.Warnings) > 0:
		return status.Warnings[0].Reason
	}
	return ready.Reason
}

// asStored returns the status as the API server stores it, times in whole seconds, so that
// comparing it with a status read back does not see a difference that is only precision.
func asStored(status apiv2.APIRuleStatus) (apiv2.APIRuleStatus, error) {
	raw, err := json.Marshal(status)
	if err != nil {
		return status, fmt.Errorf("encoding status: %w", err)
	}
	var out apiv2.APIRuleStatus
	if err := json.Unmarshal(raw, &out); err != nil {
		return status, fmt.Errorf("decoding status: %w", err)
	}
	return out, nil
}

// StatusPatch is the status write for the APIRule of the given UID: a JSON patch that
// replaces the whole status, after a test that the APIRule is still the one the status was
// computed for (a status is never written to a new APIRule of the same name: the test fails
// and the write with it). The status has one writer, the operator, so there is nothing to
// merge with, and a patch costs the API server less than a server-side apply, which parses its
// body as YAML and merges it by the schema (docs/performance.md has the figures).
func StatusPatch(uid types.UID, status apiv2.APIRuleStatus) (client.Patch, error) {
	raw, err := json.Marshal([]apply.PatchOp{
		{Op: "test", Path: "/metadata/uid", Value: uid},
		{Op: "add", Path: "/status", Value: status}, // add replaces a member that exists
	})
	if err != nil {
		return nil, fmt.Errorf("encoding status: %w", err)
	}
	return client.RawPatch(types.JSONPatchType, raw), nil
}
