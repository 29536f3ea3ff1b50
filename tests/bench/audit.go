package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// The operator runs in a process of its own, so its requests are counted where they arrive:
// kube-apiserver's audit log, which records every request of the manager's user (Metadata
// level; Events with their body, to tell the leader election's Event about its Lease from
// Events about APIRules) and nothing of anyone else's. The log backend writes each event
// before the response is sent (--audit-log-mode=blocking), so a request that returned is
// counted.

// auditPolicy logs the requests of user and nothing else.
func auditPolicy(user string) string {
	return fmt.Sprintf(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Request
  users: [%[1]q]
  resources:
  - group: ""
    resources: [events]
  - group: events.k8s.io
    resources: [events]
- level: Metadata
  users: [%[1]q]
- level: None
`, user)
}

// auditArgs are the kube-apiserver flags that write the audit log of user into dir.
func auditArgs(dir, user string) (policyPath, logPath string, err error) {
	policyPath, logPath = dir+"/audit-policy.yaml", dir+"/audit.log"
	return policyPath, logPath, os.WriteFile(policyPath, []byte(auditPolicy(user)), 0o600)
}

// auditLog counts, by "VERB resource" as testenv.RequestCounter does, the requests its audit
// log records. Each request is counted once, at its first recorded stage (a watch is
// recorded when it starts and again when it ends).
type auditLog struct {
	path string

	mu      sync.Mutex
	offset  int64
	partial []byte
	counted map[string]bool
	byKey   map[string]int
}

func newAuditLog(path string) *auditLog {
	return &auditLog{path: path, counted: map[string]bool{}, byKey: map[string]int{}}
}

// auditEvent holds the fields of an audit.k8s.io/v1 Event that are counted.
type auditEvent struct {
	AuditID    string `json:"auditID"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	ObjectRef  *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	RequestObject *struct {
		InvolvedObject struct {
			Kind string `json:"kind"`
		} `json:"involvedObject"`
		Regarding struct {
			Kind string `json:"kind"`
		} `json:"regarding"`
	} `json:"requestObject"`
}

// httpVerbs are the request verbs of testenv.RequestCounter for the audit log's verbs.
var httpVerbs = map[string]string{
	"create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETE",
	"get": "GET", "list": "LIST", "watch": "WATCH",
}

// key is the event's "VERB resource".
func (e auditEvent) key() string {
	verb := httpVerbs[e.Verb]
	if verb == "" {
		verb = strings.ToUpper(e.Verb)
	}
	if e.ObjectRef == nil || e.ObjectRef.Resource == "" {
		if strings.HasPrefix(e.RequestURI, "/api") {
			return verb + " discovery"
		}
		path, _, _ := strings.Cut(e.RequestURI, "?")
		return verb + " " + path
	}
	resource := e.ObjectRef.Resource
	if e.ObjectRef.Subresource != "" {
		resource += "/" + e.ObjectRef.Subresource
	}
	if resource == "events" && e.RequestObject != nil &&
		(e.RequestObject.InvolvedObject.Kind == "Lease" || e.RequestObject.Regarding.Kind == "Lease") {
		// Leader election records an Event about its lease: counted with the leases.
		resource += "(Lease)"
	}
	return verb + " " + resource
}

// Snapshot reads what the log gained since the last call and returns the counts so far and
// the number of writes among them (testenv.Writes: leases aside).
func (a *auditLog) Snapshot() (map[string]int, int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.read(); err != nil {
		return nil, 0, err
	}
	out := make(map[string]int, len(a.byKey))
	for k, v := range a.byKey {
		out[k] = v
	}
	return out, testenv.Writes(out), nil
}

func (a *auditLog) read() error {
	f, err := os.Open(a.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		return err
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	a.offset += int64(len(raw))
	raw = append(a.partial, raw...)
	// A line the API server is still writing is kept for the next read.
	last := bytes.LastIndexByte(raw, '\n')
	a.partial = append([]byte(nil), raw[last+1:]...)
	lines := bufio.NewScanner(bytes.NewReader(raw[:last+1]))
	lines.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for lines.Scan() {
		var e auditEvent
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			return fmt.Errorf("reading the audit log: %w", err)
		}
		if a.counted[e.AuditID] {
			continue
		}
		a.counted[e.AuditID] = true
		a.byKey[e.key()]++
	}
	return lines.Err()
}

// since returns the counts of after that are not in before.
func since(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}
