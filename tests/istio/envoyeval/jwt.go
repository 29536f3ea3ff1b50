package envoyeval

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// JWTFilterName is the dynamic-metadata namespace jwt_authn writes token payloads to.
const JWTFilterName = "envoy.filters.http.jwt_authn"

// Token stands in for a signed JWT. Requests carry an opaque string where the JWT would be;
// the Tokens registry says what that string would verify to. No real signature is checked:
// what matters here is which provider accepts the token and which claims reach RBAC.
type Token struct {
	Issuer string
	// Claims is the JSON payload (iss is added from Issuer when absent).
	Claims map[string]any
	// Invalid marks a token whose signature, expiry or format fails verification.
	Invalid bool
}

// Tokens maps the opaque token strings of a request to what they stand for.
type Tokens map[string]Token

// JWTResult is the outcome of the jwt_authn filter.
type JWTResult struct {
	// Status is 0 when the request continues, 401 when jwt_authn rejects it.
	Status int
	Reason string
}

type tokenHit struct {
	raw      string
	location string // "header:<name>", "param:<name>", "cookie:<name>"
}

// extractTokens returns the tokens found at a provider's locations. Without from_* settings
// Envoy looks at "Authorization: Bearer" and the access_token query parameter.
func extractTokens(p *jwtv3.JwtProvider, s *Stream) []tokenHit {
	var hits []tokenHit
	headers := p.GetFromHeaders()
	params := p.GetFromParams()
	if len(headers) == 0 && len(params) == 0 && len(p.GetFromCookies()) == 0 {
		headers = []*jwtv3.JwtHeader{{Name: "Authorization", ValuePrefix: "Bearer "}}
		params = []string{"access_token"}
	}
	for _, h := range headers {
		v, ok := s.Headers.Get(h.GetName())
		if !ok {
			continue
		}
		if pre := h.GetValuePrefix(); pre != "" {
			// Envoy looks for the prefix anywhere in the value and takes what follows it.
			i := strings.Index(v, pre)
			if i < 0 {
				continue
			}
			v = v[i+len(pre):]
		}
		hits = append(hits, tokenHit{raw: strings.TrimSpace(v), location: "header:" + strings.ToLower(h.GetName())})
	}
	if q := queryOf(s.Path()); q != nil {
		for _, name := range params {
			if v := q.Get(name); v != "" {
				hits = append(hits, tokenHit{raw: v, location: "param:" + name})
			}
		}
	}
	cookies := cookiesOf(s.Headers)
	for _, name := range p.GetFromCookies() {
		if v, ok := cookies[name]; ok {
			hits = append(hits, tokenHit{raw: v, location: "cookie:" + name})
		}
	}
	return hits
}

func queryOf(path string) url.Values {
	i := strings.IndexByte(path, '?')
	if i < 0 {
		return nil
	}
	q, err := url.ParseQuery(path[i+1:])
	if err != nil {
		return nil
	}
	return q
}

func cookiesOf(h Headers) map[string]string {
	out := map[string]string{}
	for _, line := range h[strings.ToLower("cookie")] {
		for _, part := range strings.Split(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok {
				out[k] = v
			}
		}
	}
	return out
}

type verification struct {
	ok      bool
	missing bool
	reason  string
	// on success: the provider and token that verified
	provider *jwtv3.JwtProvider
	token    Token
	hit      tokenHit
}

// verifyProvider checks the tokens at one provider's locations.
func verifyProvider(name string, p *jwtv3.JwtProvider, audiences []string, s *Stream, tokens Tokens) verification {
	hits := extractTokens(p, s)
	if len(hits) == 0 {
		return verification{missing: true, reason: "Jwt is missing"}
	}
	for _, h := range hits {
		tok, known := tokens[h.raw]
		switch {
		case !known || tok.Invalid:
			return verification{reason: "Jwt verification fails"}
		case p.GetIssuer() != "" && tok.Issuer != p.GetIssuer():
			// The token belongs to another issuer: this provider does not accept it.
			continue
		}
		if len(audiences) == 0 {
			audiences = p.GetAudiences()
		}
		if len(audiences) > 0 && !audienceAllowed(tok.Claims["aud"], audiences) {
			return verification{reason: "Audiences in Jwt are not allowed"}
		}
		return verification{ok: true, provider: p, token: tok, hit: h}
	}
	return verification{reason: "Jwt issuer is not configured"}
}

func audienceAllowed(aud any, allowed []string) bool {
	switch a := aud.(type) {
	case string:
		return slices.Contains(allowed, a)
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && slices.Contains(allowed, s) {
				return true
			}
		}
	case []string:
		for _, s := range a {
			if slices.Contains(allowed, s) {
				return true
			}
		}
	}
	return false
}

// EvalJWTFilter runs envoy.filters.http.jwt_authn: it selects the requirement of the first
// rule whose match fits the request, verifies it, and on success writes the payload to
// dynamic metadata, copies claims to headers and strips tokens that must not be forwarded.
func EvalJWTFilter(cfg *jwtv3.JwtAuthentication, s *Stream, tokens Tokens) (JWTResult, error) {
	if len(cfg.GetRequirementMap()) > 0 || cfg.GetFilterStateRules() != nil {
		return JWTResult{}, fmt.Errorf("jwt_authn requirement_map and filter_state_rules are not modelled")
	}
	if cfg.GetBypassCorsPreflight() {
		if m, _ := s.Headers.Get(":method"); m == "OPTIONS" {
			if _, ok := s.Headers.Get("origin"); ok {
				if _, ok := s.Headers.Get("access-control-request-method"); ok {
					return JWTResult{}, nil
				}
			}
		}
	}
	var req *jwtv3.JwtRequirement
	for _, r := range cfg.GetRules() {
		ok, err := MatchRouteMatch(r.GetMatch(), s)
		if err != nil {
			return JWTResult{}, fmt.Errorf("jwt rule match: %w", err)
		}
		if ok {
			req = r.GetRequires()
			break
		}
	}
	if req == nil {
		return JWTResult{}, nil
	}
	var verified []verification
	ok, reason, err := evalRequirement(req, cfg, s, tokens, &verified)
	if err != nil {
		return JWTResult{}, err
	}
	if !ok {
		return JWTResult{Status: 401, Reason: reason}, nil
	}
	for _, v := range verified {
		applyVerified(v, s)
	}
	return JWTResult{}, nil
}

func evalRequirement(r *jwtv3.JwtRequirement, cfg *jwtv3.JwtAuthentication, s *Stream, tokens Tokens, verified *[]verification) (bool, string, error) {
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		return evalProvider(t.ProviderName, nil, cfg, s, tokens, verified)
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		return evalProvider(t.ProviderAndAudiences.GetProviderName(), t.ProviderAndAudiences.GetAudiences(), cfg, s, tokens, verified)
	case *jwtv3.JwtRequirement_AllowMissing:
		// Satisfied only when no provider of the filter finds a token anywhere.
		if anyTokenPresent(cfg, s) {
			return false, "Jwt verification fails", nil
		}
		return true, "", nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return true, "", nil
	case *jwtv3.JwtRequirement_RequiresAny:
		reason := "Jwt is missing"
		for _, sub := range t.RequiresAny.GetRequirements() {
			ok, why, err := evalRequirement(sub, cfg, s, tokens, verified)
			if err != nil || ok {
				return ok, "", err
			}
			if why != "Jwt is missing" {
				reason = why
			}
		}
		return false, reason, nil
	case *jwtv3.JwtRequirement_RequiresAll:
		for _, sub := range t.RequiresAll.GetRequirements() {
			ok, why, err := evalRequirement(sub, cfg, s, tokens, verified)
			if err != nil || !ok {
				return false, why, err
			}
		}
		return true, "", nil
	case nil:
		return true, "", nil
	default:
		return false, "", fmt.Errorf("jwt requirement %T is not modelled", t)
	}
}

func evalProvider(name string, audiences []string, cfg *jwtv3.JwtAuthentication, s *Stream, tokens Tokens, verified *[]verification) (bool, string, error) {
	p, ok := cfg.GetProviders()[name]
	if !ok {
		return false, "", fmt.Errorf("jwt requirement names unknown provider %q", name)
	}
	v := verifyProvider(name, p, audiences, s, tokens)
	if v.ok {
		*verified = append(*verified, v)
		return true, "", nil
	}
	return false, v.reason, nil
}

func anyTokenPresent(cfg *jwtv3.JwtAuthentication, s *Stream) bool {
	names := make([]string, 0, len(cfg.GetProviders()))
	for n := range cfg.GetProviders() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if len(extractTokens(cfg.GetProviders()[n], s)) > 0 {
			return true
		}
	}
	return false
}

func applyVerified(v verification, s *Stream) {
	p := v.provider
	claims := map[string]any{}
	for k, x := range v.token.Claims {
		claims[k] = x
	}
	if _, ok := claims["iss"]; !ok && v.token.Issuer != "" {
		claims["iss"] = v.token.Issuer
	}
	if key := p.GetPayloadInMetadata(); key != "" {
		payload := map[string]any{}
		for k, x := range claims {
			payload[k] = normaliseClaim(x)
		}
		for _, c := range p.GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims() {
			if str, ok := payload[c].(string); ok {
				var parts []any
				for _, f := range strings.Fields(str) {
					parts = append(parts, f)
				}
				payload[c] = parts
			}
		}
		st, err := structpb.NewStruct(payload)
		if err == nil {
			s.SetMetadata(JWTFilterName, key, structpb.NewStructValue(st))
		}
	}
	for _, c := range p.GetClaimToHeaders() {
		if x, ok := claims[c.GetClaimName()]; ok {
			if str, ok := x.(string); ok {
				s.Headers.Set(c.GetHeaderName(), str)
			}
		}
	}
	if !p.GetForward() && strings.HasPrefix(v.hit.location, "header:") {
		s.Headers.Del(strings.TrimPrefix(v.hit.location, "header:"))
	}
}

// normaliseClaim turns YAML-decoded claim values into what structpb accepts.
func normaliseClaim(x any) any {
	switch v := x.(type) {
	case []string:
		out := make([]any, len(v))
		for i, s := range v {
			out[i] = s
		}
		return out
	case int:
		return float64(v)
	case []any:
		out := make([]any, len(v))
		for i, s := range v {
			out[i] = normaliseClaim(s)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, s := range v {
			out[k] = normaliseClaim(s)
		}
		return out
	}
	return x
}
