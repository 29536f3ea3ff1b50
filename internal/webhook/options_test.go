package webhook

import (
	"flag"
	"strings"
	"testing"
)

func TestFlagDefaultsAreTheInstallNames(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "apirule-system")
	o := DefaultOptions()
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	o.BindFlags(fs)
	want := map[string]string{
		"enable-webhook":             "true",
		"webhook-port":               "9443",
		"webhook-cert-dir":           "/tmp/k8s-webhook-server/serving-certs",
		"webhook-cert-management":    "self",
		"webhook-service-name":       "apirule-operator-webhook-service",
		"webhook-configuration-name": "apirule-operator-validating-webhook-configuration",
		"webhook-secret-name":        "apirule-operator-webhook-server-cert",
	}
	for name, value := range want {
		f := fs.Lookup(name)
		if f == nil || f.DefValue != value {
			t.Errorf("--%s default %v, want %s", name, f, value)
		}
	}
	if o.Namespace != "apirule-system" {
		t.Errorf("namespace %q does not come from POD_NAMESPACE", o.Namespace)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	base := Options{Enabled: true, Port: 9443, CertDir: "/certs", CertManagement: CertSelf, Namespace: "ns",
		ServiceName: "svc", ConfigurationName: "cfg", SecretName: "secret"}
	cases := map[string]struct {
		change func(*Options)
		want   string
	}{
		"no namespace":    {func(o *Options) { o.Namespace = "" }, "set the POD_NAMESPACE environment variable"},
		"unknown mode":    {func(o *Options) { o.CertManagement = "manual" }, `--webhook-cert-management="manual": use self or external`},
		"empty secret":    {func(o *Options) { o.SecretName = "" }, "--webhook-secret-name must not be empty"},
		"port":            {func(o *Options) { o.Port = 0 }, "--webhook-port=0"},
		"external, no ns": {func(o *Options) { o.CertManagement, o.Namespace = CertExternal, "" }, ""},
		"disabled":        {func(o *Options) { o.Enabled, o.CertManagement = false, "bogus" }, ""},
	}
	for name, c := range cases {
		o := base
		c.change(&o)
		err := o.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}
