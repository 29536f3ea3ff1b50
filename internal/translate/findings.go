package translate

import (
	"fmt"
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

// Finding is a problem found while translating, tied to the field that causes it.
type Finding struct {
	Severity Severity
	// Condition is the condition the finding sets to false: Accepted for a spec that cannot
	// be served as written, ResolvedRefs for a reference to something missing or unfit.
	Condition conditions.Type
	Reason    conditions.Reason
	Field     *field.Path
	Message   string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s", f.Field, f.Message)
}

// Findings is the list of problems of one translation.
type Findings []Finding

func (fs *Findings) add(condition conditions.Type, reason conditions.Reason, path *field.Path, format string, args ...any) {
	*fs = append(*fs, Finding{Severity: Error, Condition: condition, Reason: reason, Field: path, Message: fmt.Sprintf(format, args...)})
}

func (fs *Findings) warn(condition conditions.Type, reason conditions.Reason, path *field.Path, format string, args ...any) {
	*fs = append(*fs, Finding{Severity: Warning, Condition: condition, Reason: reason, Field: path, Message: fmt.Sprintf(format, args...)})
}

// Errors returns the findings that block the output.
func (fs Findings) Errors() Findings { return fs.of(Error) }

// Warnings returns the findings that do not block the output.
func (fs Findings) Warnings() Findings { return fs.of(Warning) }

func (fs Findings) of(severity Severity) Findings {
	var out Findings
	for _, f := range fs {
		if f.Severity == severity {
			out = append(out, f)
		}
	}
	return out
}

// For returns the findings that set the given condition to false.
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
