package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

const gatewayNamespace = "istio-system"

var (
	env    *testenv.Environment
	k8s    client.Client
	opts   operator.Options
	cancel context.CancelFunc
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

	opts = operator.DefaultOptions()
	opts.LeaderElection = false
	opts.MetricsAddress = "0"
	opts.HealthProbeAddress = "0"
	mgr, err := operator.NewManager(env.Config, opts)
	Expect(err).NotTo(HaveOccurred())
	var ctx context.Context
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()

	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gatewayNamespace}})).To(Succeed())
	Expect(k8s.Create(ctx, fixtures.Gateway(gatewayNamespace, "public-gateway", "*.example.com"))).To(Succeed())
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
