package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

const gatewayNamespace = "istio-system"

var (
	env  *testenv.Environment
	k8s  client.Client
	opts operator.Options
	// managerConfig authenticates the operator as a user bound to the install's RBAC only,
	// so a missing +kubebuilder:rbac marker fails the suite.
	managerConfig *rest.Config
	// running is the operator the specs talk to; specs that restart it replace it.
	running *runningOperator
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "APIRule reconciler on a real API server")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = env.Client()
	Expect(err).NotTo(HaveOccurred())

	ctx := context.Background()
	// Before the grants: Roles for the ingress gateway namespace are granted only where it exists.
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gatewayNamespace}})).To(Succeed())
	managerConfig, err = env.ManagerConfig(ctx, "")
	Expect(err).NotTo(HaveOccurred())

	opts = operator.DefaultOptions()
	opts.LeaderElection = false
	opts.MetricsAddress = "0"
	opts.HealthProbeAddress = "0"
	opts.RestartableInProcess = true
	// The specs of cross-namespace children need backends in other namespaces; refusing them
	// by default is checked by the webhook suite and the checks' unit tests.
	opts.Settings.AllowCrossNamespaceBackends = true
	running = startOperator()

	Expect(k8s.Create(ctx, fixtures.Gateway(gatewayNamespace, "public-gateway", "*.example.com"))).To(Succeed())
	Expect(k8s.Create(ctx, fixtures.GatewayCredential(gatewayNamespace, "public-gateway", "*.example.com"))).To(Succeed())
})

var _ = AfterSuite(func() {
	if running != nil {
		running.stop()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// runningOperator is an operator started in-process, with a count of the API requests it
// sends.
type runningOperator struct {
	requests *testenv.RequestCounter
	cancel   context.CancelFunc
	done     chan struct{}

	// mgr is the operator's manager: its cache is what the operator reads.
	mgr ctrl.Manager
}

// startOperator starts the operator with the test options and a client that counts its API
// requests.
func startOperator() *runningOperator {
	counter := testenv.NewRequestCounter()
	cfg := rest.CopyConfig(managerConfig)
	cfg.WrapTransport = counter.Wrap
	mgr, err := operator.NewManager(cfg, opts)
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return &runningOperator{requests: counter, mgr: mgr, cancel: cancel, done: done}
}

func (o *runningOperator) stop() {
	o.cancel()
	<-o.done
}

// reconciles is how many reconciles the APIRule controller has finished in this process.
func reconciles() float64 { return testenv.ReconcileCount("apirule") }
