package v2

// Strategy names the access strategy a rule sets: "noAuth", "jwt" or "extAuth"; "none" when
// it sets none (the schema refuses such a rule).
func (r *Rule) Strategy() string {
	switch {
	case r.JWT != nil:
		return "jwt"
	case r.ExtAuth != nil:
		return "extAuth"
	case r.NoAuth != nil && *r.NoAuth:
		return "noAuth"
	}
	return "none"
}
