package check

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/apirule-operator/apirule-operator/internal/conditions"
)

// Severity says whether a finding blocks the output.
type Severity string

const (
	// Error findings block the output: nothing is applied for the APIRule.
	Error Severity = "Error"
	// Warning findings are reported; the objects are still generated.
	Warning Severity = "Warning"
)

// Finding is one problem of an APIRule, tied to the field that causes it.
type Finding struct {
	Severity Severity
	// Condition is the condition the finding is about: Accepted for a spec that cannot be
	// served as written, ResolvedRefs for a reference to something missing or unfit.
	Condition conditions.Type
	Reason    conditions.Reason
	Field     *field.Path
	// Value is the datum the finding is about, as the APIRule or the cluster holds it: the
	// host (as routed), the issuer, the provider, the path. Callers act on it; nothing
	// parses the field path or the message back.
	Value any
	// Message says what is wrong and how to fix it.
	Message string
}

func (f Finding) String() string {
	if f.Field == nil {
		// A finding about the whole object, as the API server reports some schema causes.
		return "object: " + f.Message
	}
	return fmt.Sprintf("%s: %s", f.Field, f.Message)
}

// Findings is the list of problems of one APIRule.
type Findings []Finding

func (fs *Findings) add(condition conditions.Type, reason conditions.Reason, path *field.Path, value any, format string, args ...any) {
	*fs = append(*fs, Finding{Severity: Error, Condition: condition, Reason: reason, Field: path, Value: value, Message: fmt.Sprintf(format, args...)})
}

func (fs *Findings) warn(condition conditions.Type, reason conditions.Reason, path *field.Path, value any, format string, args ...any) {
	*fs = append(*fs, Finding{Severity: Warning, Condition: condition, Reason: reason, Field: path, Value: value, Message: fmt.Sprintf(format, args...)})
}

// Errors returns the findings that block the output.
func (fs Findings) Errors() Findings { return fs.of(Error) }

// Warnings returns the findings that do not block the output.
func (fs Findings) Warnings() Findings { return fs.of(Warning) }

// HasErrors says whether any finding blocks the output.
func (fs Findings) HasErrors() bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error })
}

func (fs Findings) of(severity Severity) Findings {
	var out Findings
	for _, f := range fs {
		if f.Severity == severity {
			out = append(out, f)
		}
	}
	return out
}

// For returns the findings about the given condition.
func (fs Findings) For(condition conditions.Type) Findings {
	var out Findings
	for _, f := range fs {
		if f.Condition == condition {
			out = append(out, f)
		}
	}
	return out
}

// Summary joins the findings into one message, each prefixed with its field path.
func (fs Findings) Summary() string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

// ErrorList returns the errors as a field.ErrorList, the form the API server reports them in.
func (fs Findings) ErrorList() field.ErrorList {
	var out field.ErrorList
	for _, f := range fs.Errors() {
		out = append(out, field.Invalid(f.Field, f.Value, f.Message))
	}
	return out
}

// WarningLines returns the warnings, each prefixed with its field path, as admission
// warnings are written.
func (fs Findings) WarningLines() []string {
	var out []string
	for _, f := range fs.Warnings() {
		out = append(out, f.String())
	}
	return out
}

// Refuses says whether an error finding has the reason.
func (fs Findings) Refuses(reason conditions.Reason) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error && f.Reason == reason })
}

// ConflictingHosts returns the hosts, as routed, of the host conflicts among the findings:
// the hosts an older owner holds, which this APIRule's route must give up.
func (fs Findings) ConflictingHosts() []string {
	var out []string
	for _, f := range fs.Errors() {
		if host, ok := f.Value.(string); ok && f.Reason == conditions.ReasonHostConflict && !slices.Contains(out, host) {
			out = append(out, host)
		}
	}
	return out
}
