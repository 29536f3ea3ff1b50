package operator_test

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// The operator asks the API server for uncompressed responses unless told otherwise: every
// list and watch of its cache, those of the generated kinds and the Pods' included, over TLS
// and over plain HTTP (where client-go hands the request to Go's default transport, which
// asks for gzip on its own). Every request names the operator in its user agent. A proxy in
// front of a real API server records what each request sends.
func TestTheOperatorAsksForCompressionOnlyWhenTold(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}); err != nil {
		t.Fatal(err)
	}
	upstream, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ compression, tls bool }{{false, true}, {true, true}, {false, false}, {true, false}} {
		compression := c.compression
		var mu sync.Mutex
		accepted := map[string]string{} // request path -> its Accept-Encoding
		var agents []string
		proxy := httputil.NewSingleHostReverseProxy(upstream)
		proxy.Transport = transport
		// Watch events pass through as they come.
		proxy.FlushInterval = -1
		server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			accepted[r.URL.Path] += r.Header.Get("Accept-Encoding") + ";"
			agents = append(agents, r.Header.Get("User-Agent"))
			mu.Unlock()
			proxy.ServeHTTP(w, r)
		}))
		// Connections still opening when the operator stops are no finding.
		server.Config.ErrorLog = log.New(io.Discard, "", 0)
		cfg := &rest.Config{}
		if c.tls {
			server.StartTLS()
			cfg.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw})
		} else {
			server.Start()
		}
		cfg.Host = server.URL

		opts := operator.DefaultOptions()
		opts.LeaderElection = false
		opts.MetricsAddress = "0"
		opts.HealthProbeAddress = "0"
		opts.RestartableInProcess = true
		opts.ResponseCompression = compression
		mgr, err := operator.NewManager(cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		synced, syncCancel := context.WithTimeout(ctx, time.Minute)
		if !mgr.GetCache().WaitForCacheSync(synced) {
			t.Error("the cache did not sync through the proxy")
		}
		syncCancel()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the operator stopped with: %v", err)
		}
		server.Close()

		mu.Lock()
		var gzip, plain []string
		for path, encodings := range accepted {
			if strings.Contains(encodings, "gzip") {
				gzip = append(gzip, path)
			} else {
				plain = append(plain, path)
			}
		}
		mu.Unlock()
		for _, kind := range []string{"/apis/networking.istio.io/v1/virtualservices", "/api/v1/pods", "/apis/gateway.apirule.io/v2/apirules"} {
			if _, requested := accepted[kind]; !requested {
				t.Errorf("%+v: the operator did not read %s through the proxy", c, kind)
			}
		}
		switch {
		case !compression && len(gzip) > 0:
			t.Errorf("%+v: these requests asked for gzip: %v", c, gzip)
		case compression && len(plain) > 0:
			t.Errorf("%+v: these requests did not ask for gzip: %v", c, plain)
		}
		for _, agent := range agents {
			if !strings.HasPrefix(agent, "operator.test/") {
				t.Errorf("%+v: a request's user agent is %q, not the operator's", c, agent)
				break
			}
		}
	}
}
