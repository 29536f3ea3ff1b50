package controllers

import (
	"testing"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/validate"
)

// The webhook looks hosts up with validate.HostIndexKey; it must spell keys as the index does.
func TestHostIndexKeyMatchesTheIndex(t *testing.T) {
	if got, want := validate.HostIndexKey(apiv2.Host("api")), shortHostKey("api"); got != want {
		t.Errorf("short host key %q, index uses %q", got, want)
	}
	if got := validate.HostIndexKey(apiv2.Host("api.example.com")); got != "api.example.com" {
		t.Errorf("host with a domain is keyed %q", got)
	}
}
