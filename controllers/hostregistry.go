package controllers

import (
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// hostRegistry records which APIRule routes which host, as this process applied it. The
// cache learns of a new VirtualService only after a watch event, so two APIRules reconciled
// one after the other (or at once, by two workers) could both see a host as free; claims go
// through this registry, atomically, to close that window. It is rebuilt from the cache after
// a restart: an entry is added whenever an APIRule's routes are read or written.
type hostRegistry struct {
	mu      sync.Mutex
	holders map[string]types.NamespacedName
	hosts   map[types.NamespacedName][]string
}

func newHostRegistry() *hostRegistry {
	return &hostRegistry{holders: map[string]types.NamespacedName{}, hosts: map[types.NamespacedName][]string{}}
}

// holder returns the APIRule that routes the host, other than owner.
func (r *hostRegistry) holder(host string, owner types.NamespacedName) (types.NamespacedName, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.holders[host]
	return h, ok && h != owner
}

// claim records that owner routes exactly these hosts, unless another APIRule holds one of
// them; then nothing changes and the held hosts are returned.
func (r *hostRegistry) claim(owner types.NamespacedName, hosts []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var held []string
	for _, h := range hosts {
		if other, ok := r.holders[h]; ok && other != owner {
			held = append(held, h)
		}
	}
	if len(held) > 0 {
		return held
	}
	r.setLocked(owner, hosts)
	return nil
}

// set records the hosts owner routes now, whatever others hold (what a VirtualService in the
// cache shows).
func (r *hostRegistry) set(owner types.NamespacedName, hosts []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLocked(owner, hosts)
}

func (r *hostRegistry) setLocked(owner types.NamespacedName, hosts []string) {
	for _, h := range r.hosts[owner] {
		if r.holders[h] == owner && !slices.Contains(hosts, h) {
			delete(r.holders, h)
		}
	}
	for _, h := range hosts {
		if _, taken := r.holders[h]; !taken {
			r.holders[h] = owner
		}
	}
	if len(hosts) == 0 {
		delete(r.hosts, owner)
		return
	}
	r.hosts[owner] = slices.Clone(hosts)
}
