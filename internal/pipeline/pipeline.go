// Package pipeline turns a gathered input into what the operator does about it: the checks'
// findings and, when none of them is an error, the translator's objects. The reconciler and
// apirulectl both call Run, so the cluster and an offline rendering agree by construction.
package pipeline

import (
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// Result is the outcome for one APIRule.
type Result struct {
	// Objects are the desired Istio objects; empty whenever Findings holds an error: an
	// APIRule that cannot be served exactly as written gets nothing new applied.
	Objects translate.Objects
	// Findings are the problems found; errors block the objects, warnings do not.
	Findings check.Findings
	// RecheckAt, when set, is when the findings change by the passing of time alone.
	RecheckAt time.Time
}

// Run checks the input and, when the checks find no error, translates it.
func Run(in model.Input) Result {
	checked := check.Full(in)
	result := Result{Findings: checked.Findings, RecheckAt: checked.RecheckAt}
	if checked.Findings.HasErrors() {
		return result
	}
	objects, err := translate.Translate(in)
	if err != nil {
		// The checks let through an input the translator cannot build: a defect of the
		// operator, reported rather than served.
		result.Findings = append(result.Findings, check.Finding{
			Severity: check.Error, Condition: conditions.Accepted, Reason: conditions.ReasonInvalidSpec,
			Field: field.NewPath("spec"), Message: "the operator cannot translate this APIRule: " + err.Error(),
		})
		return result
	}
	result.Objects = objects
	return result
}
