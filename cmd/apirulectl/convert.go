package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/schema"
)

// convert follows docs/migration.md: it does what the jq recipe there does (new apiVersion;
// of the metadata only name, namespace and labels; no status) and then goes through the table
// of differences, leaving out what this API refuses or cannot express and saying so per field
// of the input. What is left out fails closed: a rule that cannot be converted is not in the
// output, so its path is not routed, rather than routed with a weaker check.

const (
	kymaGroup = "gateway.kyma-project.io"
	// leftOut: a field, rule or APIRule of the input is not in the output.
	leftOut = "left out"
	// differs: converted, but the operator serves it differently than Kyma did.
	differs = "differs"
)

// conversionNote is one line of the report on stderr.
type conversionNote struct {
	kind, object, field, message string
}

func (n conversionNote) String() string {
	return fmt.Sprintf("%s %s: %s: %s", n.kind, n.object, n.field, n.message)
}

// runConvert is `apirulectl convert`.
func runConvert(inv *invocation, _ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(inv.files) == 0 {
		return usageError(stderr, "convert: -f FILE is required (use - for standard input)")
	}
	readers, closeAll, err := openFiles(inv.files, stdin)
	defer closeAll()
	if err != nil {
		fmt.Fprintln(stderr, "apirulectl:", err)
		return exitUsage
	}
	docs, err := readDocuments(io.MultiReader(readers...))
	if err != nil {
		fmt.Fprintf(stderr, "apirulectl: %s: %v\n", inv.files.String(), err)
		return exitUsage
	}
	var out bytes.Buffer
	var notes []conversionNote
	converted := 0
	for _, doc := range docs {
		obj, docNotes := convertDocument(doc)
		notes = append(notes, docNotes...)
		if obj == nil {
			continue
		}
		raw, err := yaml.Marshal(obj)
		if err != nil {
			fmt.Fprintln(stderr, "apirulectl:", err)
			return exitUsage
		}
		out.WriteString("---\n")
		out.Write(raw)
		converted++
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return exitUsage
	}
	incomplete := false
	for _, n := range notes {
		fmt.Fprintln(stderr, n)
		incomplete = incomplete || n.kind == leftOut
	}
	switch {
	case converted == 0:
		fmt.Fprintf(stderr, "apirulectl: convert: %s: no APIRule converted\n", inv.files.String())
		return exitFindings
	case incomplete && inv.strict:
		fmt.Fprintln(stderr, "apirulectl: convert: --strict: the input has fields that were left out (above)")
		return exitFindings
	}
	return exitOK
}

// document is one object of the input, with where it came from.
type document struct {
	obj   map[string]any
	where string // "document 3", "document 3, item 2"
}

// readDocuments splits a multi-document stream and expands v1 Lists (kubectl get -o yaml).
func readDocuments(r io.Reader) ([]document, error) {
	var out []document
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for n := 1; ; n++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		obj, err := schema.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if obj == nil {
			continue
		}
		where := fmt.Sprintf("document %d", n)
		if obj["kind"] == "List" {
			items, _ := obj["items"].([]any)
			for i, item := range items {
				if m, ok := item.(map[string]any); ok {
					out = append(out, document{obj: m, where: fmt.Sprintf("%s, item %d", where, i)})
				}
			}
			continue
		}
		out = append(out, document{obj: obj, where: where})
	}
}

// convertDocument converts one APIRule; nil when nothing of it converts.
func convertDocument(doc document) (map[string]any, []conversionNote) {
	apiVersion, _ := doc.obj["apiVersion"].(string)
	kind, _ := doc.obj["kind"].(string)
	c := &converter{object: doc.where, namespace: "default"}
	md, _ := doc.obj["metadata"].(map[string]any)
	if ns, _ := md["namespace"].(string); ns != "" {
		c.namespace = ns
	}
	if name, _ := md["name"].(string); name != "" {
		c.object = name
		if ns, _ := md["namespace"].(string); ns != "" {
			c.object = ns + "/" + name
		}
	}
	if kind != "APIRule" {
		c.object = doc.where + " (" + kind + " " + c.object + ")"
		c.note(leftOut, "kind", "%s %s is not an APIRule; convert reads Kyma APIRules only", apiVersion, kind)
		return nil, c.notes
	}
	var spec map[string]any
	switch apiVersion {
	case apiv2.GroupVersion.String():
		return doc.obj, nil // already this API
	case kymaGroup + "/v2", kymaGroup + "/v2alpha1":
		spec = c.fromV2(mapAt(doc.obj, "spec"))
	case kymaGroup + "/v1beta1":
		spec = c.fromV1beta1(mapAt(doc.obj, "spec"))
	default:
		c.note(leftOut, "apiVersion", "%q is not a Kyma APIRule version; convert reads %s/v2, v2alpha1 and v1beta1", apiVersion, kymaGroup)
		return nil, c.notes
	}
	// The recipe of docs/migration.md: of the metadata only what the user owns.
	meta := map[string]any{}
	for _, key := range []string{"name", "namespace", "labels"} {
		if v, ok := md[key]; ok {
			meta[key] = v
		}
	}
	out := map[string]any{"apiVersion": apiv2.GroupVersion.String(), "kind": "APIRule", "metadata": meta, "spec": spec}
	valid := c.validate(out)
	// The report reads top down: the APIRule's own fields, then rule by rule, then what
	// became of the whole APIRule.
	slices.SortStableFunc(c.notes, func(x, y conversionNote) int { return noteOrder(x.field) - noteOrder(y.field) })
	if !valid {
		return nil, c.notes
	}
	return out, c.notes
}

// noteOrder places a note by its field: the APIRule's fields (-1), its rules by index, and
// last the notes on the APIRule as a whole.
func noteOrder(path string) int {
	if i, ok := ruleIndex(path); ok {
		return i
	}
	if path == "spec" || path == "spec.rules" {
		return math.MaxInt32
	}
	return -1
}

// converter collects the report of one APIRule. ruleOrigin maps each rule of the output to
// its index in the input, so that the report names the input's fields.
type converter struct {
	object     string
	namespace  string // the APIRule's, default when it names none (as kubectl)
	notes      []conversionNote
	ruleOrigin []int
}

func (c *converter) note(kind, path, format string, a ...any) {
	c.notes = append(c.notes, conversionNote{kind: kind, object: c.object, field: path, message: fmt.Sprintf(format, a...)})
}

// fromV2 converts the spec of a Kyma v2 APIRule: the same fields, but for what the table of
// docs/migration.md names.
func (c *converter) fromV2(in map[string]any) map[string]any {
	spec, _ := deepCopy(in).(map[string]any)
	if spec == nil {
		spec = map[string]any{}
	}
	if _, ok := spec["externalGateway"]; ok {
		delete(spec, "externalGateway")
		c.note(leftOut, "spec.externalGateway", "ExternalGateways are not supported; set spec.gateway to an Istio Gateway (namespace/name), "+
			"or run the operator with --default-gateway")
	}
	c.service(spec, "spec.service")
	rules, _ := spec["rules"].([]any)
	var kept []any
	for i, r := range rules {
		rule, ok := r.(map[string]any)
		path := fmt.Sprintf("spec.rules[%d]", i)
		if !ok {
			c.note(leftOut, path, "not an object")
			continue
		}
		if !c.rulePath(rule, path) || !c.jwt(mapAt(rule, "jwt"), path+".jwt") ||
			!c.jwt(mapAt(mapAt(rule, "extAuth"), "restrictions"), path+".extAuth.restrictions") {
			continue
		}
		c.service(rule, path+".service")
		kept = append(kept, rule)
		c.ruleOrigin = append(c.ruleOrigin, i)
	}
	spec["rules"] = kept
	if kept == nil {
		spec["rules"] = []any{}
	}
	return spec
}

// service drops service.external: true, which Kyma accepts and this API refuses, and notes
// a Service of another namespace, which Kyma serves and the operator only with consent.
func (c *converter) service(parent map[string]any, path string) {
	svc := mapAt(parent, "service")
	if svc == nil {
		return
	}
	if ns, _ := svc["namespace"].(string); ns != "" && ns != c.namespace {
		c.note(differs, path+".namespace", "a Service of namespace %s: refused (CrossNamespaceBackend) unless a ReferenceGrant "+
			"in %s lets APIRules of %s reach it, or the operator runs with --allow-cross-namespace-backends", ns, ns, c.namespace)
	}
	if external, ok := svc["external"].(bool); ok && external {
		delete(svc, "external")
		c.note(leftOut, path+".external", "external Services are not supported: the backend is a Service of the cluster, "+
			"whose Pods run the sidecar that enforces the policies; the field is dropped, so the Service must exist")
	}
}

// doubleStarInside matches a path with {**} before its last segment.
var doubleStarInside = regexp.MustCompile(`\{\*\*\}/`)

// rulePath checks what of a rule's path the operator refuses; false leaves the rule out.
func (c *converter) rulePath(rule map[string]any, path string) bool {
	p, _ := rule["path"].(string)
	if doubleStarInside.MatchString(p) {
		c.note(leftOut, path+".path", "%q: Kyma lets {**} stand before other segments, this operator only as the last segment; "+
			"the rule is left out: rewrite it with {*} per segment (/x/{*}/y) or end the path at {**} (/x/{**})", p)
		return false
	}
	return true
}

// jwt checks a jwt strategy's key sets; false leaves the rule out.
func (c *converter) jwt(jwt map[string]any, path string) bool {
	if jwt == nil {
		return true
	}
	auths, _ := jwt["authentications"].([]any)
	ok := true
	for i, a := range auths {
		auth, _ := a.(map[string]any)
		at := fmt.Sprintf("%s.authentications[%d]", path, i)
		if uri, _ := auth["jwksUri"].(string); strings.HasPrefix(uri, "file:") {
			c.note(leftOut, at+".jwksUri", "%q: key sets from files are not supported; the rule is left out: use the issuer's https "+
				"URL, or put the key set inline as jwks", uri)
			ok = false
		}
		_, headers := auth["fromHeaders"]
		_, params := auth["fromParams"]
		if !headers && !params {
			c.note(differs, at, "no token location is set: Kyma also read the token from the access_token query parameter, "+
				"this operator only from Authorization: Bearer; add fromParams: [access_token] if clients send it there")
		}
	}
	return ok
}

// fromV1beta1 converts the spec of Kyma's v1beta1 APIRule into v2.
func (c *converter) fromV1beta1(in map[string]any) map[string]any {
	in, _ = deepCopy(in).(map[string]any)
	spec := map[string]any{}
	for _, key := range sortedKeys(in) {
		value := in[key]
		switch key {
		case "host":
			spec["hosts"] = []any{value}
		case "gateway":
			spec["gateway"] = gatewayRef(fmt.Sprint(value))
		case "service", "timeout", "corsPolicy":
			spec[key] = value
		case "rules":
		default:
			c.note(leftOut, "spec."+key, "v1beta1 field without a v2 equivalent")
		}
	}
	c.service(spec, "spec.service")
	rules, _ := in["rules"].([]any)
	kept := []any{}
	for i, r := range rules {
		path := fmt.Sprintf("spec.rules[%d]", i)
		rule, ok := r.(map[string]any)
		if !ok {
			c.note(leftOut, path, "not an object")
			continue
		}
		if out := c.ruleV1beta1(rule, path); out != nil {
			kept = append(kept, out)
			c.ruleOrigin = append(c.ruleOrigin, i)
		}
	}
	spec["rules"] = kept
	return spec
}

// gatewayRef turns the v1beta1 form name.namespace.svc.cluster.local into namespace/name.
func gatewayRef(ref string) string {
	if name, rest, ok := strings.Cut(ref, "."); ok && !strings.Contains(ref, "/") {
		if ns, ok := strings.CutSuffix(rest, ".svc.cluster.local"); ok && !strings.Contains(ns, ".") {
			return ns + "/" + name
		}
	}
	return ref
}

// ruleV1beta1 converts one v1beta1 rule; nil leaves it out.
func (c *converter) ruleV1beta1(in map[string]any, path string) map[string]any {
	out := map[string]any{}
	for _, key := range sortedKeys(in) {
		value := in[key]
		switch key {
		case "methods", "service", "timeout":
			out[key] = value
		case "path", "accessStrategies", "mutators":
		default:
			c.note(leftOut, path+"."+key, "v1beta1 field without a v2 equivalent")
		}
	}
	c.service(out, path+".service")
	p, _ := in["path"].(string)
	converted, ok := pathFromRegex(p)
	if !ok {
		c.note(leftOut, path+".path", "%q is a regular expression, which v2 paths are not; the rule is left out: rewrite it with "+
			"/*, {*} (one segment) or {**} (the rest of the path), for example /.* as /* and /api/.* as /api/{**}", p)
		return nil
	}
	out["path"] = converted
	strategies, _ := in["accessStrategies"].([]any)
	var chosen map[string]any
	for i, s := range strategies {
		strategy, _ := s.(map[string]any)
		at := fmt.Sprintf("%s.accessStrategies[%d]", path, i)
		converted := c.strategy(strategy, at)
		if converted == nil {
			return nil
		}
		if chosen != nil && !equalJSON(chosen, converted) {
			c.note(leftOut, path+".accessStrategies", "several access strategies: a v2 rule has exactly one; the rule is left out: "+
				"keep one strategy, or split the rule by path or method")
			return nil
		}
		chosen = converted
	}
	if chosen == nil {
		c.note(leftOut, path+".accessStrategies", "no access strategy; the rule is left out: set one (noAuth, jwt or extAuth)")
		return nil
	}
	for key, value := range chosen {
		out[key] = value
	}
	mutators, _ := in["mutators"].([]any)
	for i, m := range mutators {
		c.mutator(m, out, fmt.Sprintf("%s.mutators[%d]", path, i))
	}
	return out
}

// pathFromRegex converts the v1beta1 paths that have a v2 form: literal paths, /.* and a
// literal prefix followed by /.*.
func pathFromRegex(p string) (string, bool) {
	literal := func(s string) bool {
		// A dot alone reads as the literal dot of a file name; as a regular expression it
		// matches more, so the literal path is the narrower rule.
		return !strings.ContainsAny(strings.ReplaceAll(s, ".*", "*"), `*+?()[]{}|^$\`)
	}
	switch {
	case p == "/.*" || p == ".*":
		return "/*", true
	case strings.HasSuffix(p, "/.*") && strings.HasPrefix(p, "/") && literal(strings.TrimSuffix(p, "/.*")):
		return strings.TrimSuffix(p, ".*") + "{**}", true
	case strings.HasPrefix(p, "/") && literal(p):
		return p, true
	}
	return "", false
}

// strategy converts one v1beta1 access strategy into v2 rule fields; nil leaves the rule out.
func (c *converter) strategy(in map[string]any, path string) map[string]any {
	handler, _ := in["handler"].(string)
	config := mapAt(in, "config")
	switch handler {
	case "allow", "noop", "no_auth":
		return map[string]any{"noAuth": true}
	case "jwt":
		if jwt := c.jwtConfig(config, path+".config"); jwt != nil {
			return map[string]any{"jwt": jwt}
		}
		return nil
	case "oauth2_introspection":
		c.note(leftOut, path+".handler", "oauth2_introspection has no v2 equivalent; the rule is left out: declare the "+
			"introspecting authorizer as an ext-authz provider in Istio's mesh config and use extAuth: {authorizers: [<provider>]}")
	default:
		c.note(leftOut, path+".handler", "%q has no v2 equivalent; the rule is left out: use noAuth, jwt or extAuth", handler)
	}
	return nil
}

// jwtConfig converts a jwt handler's config: Istio's form (authentications, authorizations)
// as it is, Ory's (trusted_issuers, jwks_urls, required_scope, target_audience, token_from)
// into it. nil leaves the rule out.
func (c *converter) jwtConfig(config map[string]any, path string) map[string]any {
	if _, istio := config["authentications"]; istio {
		jwt := map[string]any{}
		for _, key := range sortedKeys(config) {
			value := config[key]
			if key == "authentications" || key == "authorizations" {
				jwt[key] = value
			} else {
				c.note(leftOut, path+"."+key, "field without a v2 equivalent")
			}
		}
		if !c.jwt(jwt, path) {
			return nil
		}
		return jwt
	}
	issuers := stringList(config["trusted_issuers"])
	keySets := stringList(config["jwks_urls"])
	if len(issuers) == 0 || len(keySets) == 0 {
		c.note(leftOut, path, "needs trusted_issuers and jwks_urls: v2 names the issuer and the key set of every token it accepts; "+
			"the rule is left out: set both")
		return nil
	}
	if len(keySets) > 1 && len(issuers) != len(keySets) {
		c.note(leftOut, path+".jwks_urls", "%d key sets and %d trusted issuers: v2 gives each issuer one key set; the rule is left out: "+
			"list one jwks_url per trusted issuer, in the same order", len(keySets), len(issuers))
		return nil
	}
	var auths []any
	for i, issuer := range issuers {
		uri := keySets[0]
		if len(keySets) > 1 {
			uri = keySets[i]
		}
		if strings.HasPrefix(uri, "file:") {
			c.note(leftOut, fmt.Sprintf("%s.jwks_urls[%d]", path, min(i, len(keySets)-1)), "%q: key sets from files are not "+
				"supported; the rule is left out: use the issuer's https URL", uri)
			return nil
		}
		auth := map[string]any{"issuer": issuer, "jwksUri": uri}
		auths = append(auths, auth)
	}
	if len(keySets) > 1 {
		c.note(differs, path+".jwks_urls", "paired with trusted_issuers by position: Ory accepted a token of any listed issuer "+
			"signed with any listed key set")
	}
	jwt := map[string]any{"authentications": auths}
	authz := map[string]any{}
	for _, key := range sortedKeys(config) {
		value := config[key]
		switch key {
		case "trusted_issuers", "jwks_urls":
		case "required_scope":
			authz["requiredScopes"] = value
		case "target_audience":
			authz["audiences"] = value
		case "token_from":
			from := mapAt(config, "token_from")
			for _, kind := range sortedKeys(from) {
				name := from[kind]
				for _, a := range auths {
					auth := a.(map[string]any)
					switch kind {
					case "header":
						auth["fromHeaders"] = []any{map[string]any{"name": name}}
					case "query_parameter":
						auth["fromParams"] = []any{name}
					case "cookie":
						auth["fromCookies"] = []any{name}
					default:
						c.note(leftOut, path+".token_from."+kind, "token location without a v2 equivalent; the rule is left out")
						return nil
					}
				}
			}
		default:
			c.note(leftOut, path+"."+key, "Ory jwt option without a v2 equivalent")
		}
	}
	if len(authz) > 0 {
		jwt["authorizations"] = []any{authz}
	}
	return jwt
}

// mutator converts the header and cookie mutators with fixed values into request.headers
// and request.cookies; templates and other mutators have no v2 equivalent.
func (c *converter) mutator(m any, rule map[string]any, path string) {
	mutator, _ := m.(map[string]any)
	handler, _ := mutator["handler"].(string)
	config := mapAt(mutator, "config")
	var field, configKey string
	switch handler {
	case "header":
		field, configKey = "headers", "headers"
	case "cookie":
		field, configKey = "cookies", "cookies"
	default:
		c.note(leftOut, path+".handler", "%q has no v2 equivalent: the backend no longer receives what it added", handler)
		return
	}
	values := mapAt(config, configKey)
	for _, key := range sortedKeys(values) {
		value := fmt.Sprint(values[key])
		if strings.Contains(value, "{{") {
			c.note(leftOut, path+".config."+configKey+"."+key, "a template: v2 sets fixed values only; the backend no longer receives it")
			continue
		}
		request := mapAt(rule, "request")
		if request == nil {
			request = map[string]any{}
			rule["request"] = request
		}
		set := mapAt(request, field)
		if set == nil {
			set = map[string]any{}
			request[field] = set
		}
		set[key] = value
	}
}

// validate runs the converted APIRule through the CRD's schema, as the API server will: an
// unknown field is dropped, a rule the schema refuses is left out, anything else leaves the
// APIRule out. false when the APIRule is left out.
func (c *converter) validate(obj map[string]any) bool {
	if rules, _ := mapAt(obj, "spec")["rules"].([]any); len(rules) == 0 && len(c.notes) > 0 {
		c.note(leftOut, "spec.rules", "no rule converts; the APIRule is left out")
		return false
	}
	for range 64 { // each pass removes a field or a rule; the bound only guards a loop
		_, errs := schema.Validate(obj)
		if len(errs) == 0 {
			return true
		}
		e := errs[0]
		if e.Detail == schema.UnknownField && deletePath(obj, e.Field) {
			c.note(leftOut, c.inputPath(e.Field), "not a field of %s", apiv2.GroupVersion)
			continue
		}
		if i, ok := ruleIndex(e.Field); ok && i < len(c.ruleOrigin) {
			c.note(leftOut, c.inputPath(e.Field), "%s; the rule is left out", e.ErrorBody())
			spec := obj["spec"].(map[string]any)
			rules := spec["rules"].([]any)
			spec["rules"] = slices.Delete(rules, i, i+1)
			c.ruleOrigin = slices.Delete(c.ruleOrigin, i, i+1)
			if len(c.ruleOrigin) > 0 {
				continue
			}
			c.note(leftOut, "spec.rules", "no rule converts; the APIRule is left out")
			return false
		}
		for _, e := range errs {
			c.note(leftOut, c.inputPath(e.Field), "%s", e.ErrorBody())
		}
		c.note(leftOut, "spec", "the APIRule is left out: fix the fields above and convert again")
		return false
	}
	return false
}

var rulePrefix = regexp.MustCompile(`^spec\.rules\[(\d+)\]`)

func ruleIndex(path string) (int, bool) {
	m := rulePrefix.FindStringSubmatch(path)
	if m == nil {
		return 0, false
	}
	i, err := strconv.Atoi(m[1])
	return i, err == nil
}

// inputPath renames the output's rule index in a field path to the input's.
func (c *converter) inputPath(path string) string {
	if i, ok := ruleIndex(path); ok && i < len(c.ruleOrigin) {
		return rulePrefix.ReplaceAllString(path, fmt.Sprintf("spec.rules[%d]", c.ruleOrigin[i]))
	}
	return path
}

// deletePath deletes the field at a path such as spec.rules[0].foo; false when there is none.
func deletePath(obj map[string]any, path string) bool {
	parts := strings.Split(path, ".")
	var cur any = obj
	for i, part := range parts {
		name, index, indexed := strings.Cut(part, "[")
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if i == len(parts)-1 && !indexed {
			_, found := m[name]
			delete(m, name)
			return found
		}
		cur = m[name]
		if indexed {
			n, err := strconv.Atoi(strings.TrimSuffix(index, "]"))
			list, ok := cur.([]any)
			if err != nil || !ok || n >= len(list) {
				return false
			}
			cur = list[n]
		}
	}
	return false
}

func mapAt(m map[string]any, key string) map[string]any {
	v, _ := m[key].(map[string]any)
	return v
}

func stringList(v any) []string {
	var out []string
	switch v := v.(type) {
	case []any:
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
	case string:
		out = []string{v}
	}
	return out
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}

// sortedKeys returns a map's keys in order: the report must not change with Go's map order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func equalJSON(a, b any) bool {
	x, errX := yaml.Marshal(a)
	y, errY := yaml.Marshal(b)
	return errX == nil && errY == nil && bytes.Equal(x, y)
}
