package crd_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Every object of every golden output must be accepted by the API server with Istio's CRDs
// installed: their OpenAPI schemas and CEL rules.
var _ = Describe("golden translation outputs", func() {
	It("are accepted by the Istio CRD schemas", func() {
		files, err := filepath.Glob(filepath.Join("..", "..", "internal", "translate", "testdata", "*.out.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty())
		checked := 0
		for _, file := range files {
			raw, err := os.ReadFile(file)
			Expect(err).NotTo(HaveOccurred())
			reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
			for {
				doc, err := reader.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				Expect(err).NotTo(HaveOccurred())
				obj := &unstructured.Unstructured{}
				Expect(yaml.Unmarshal(doc, &obj.Object)).To(Succeed())
				if len(obj.Object) == 0 {
					continue
				}
				ensureNamespace(obj.GetNamespace())
				Expect(k8s.Create(ctx, obj, client.DryRunAll)).To(Succeed(), "%s: %s %s", filepath.Base(file), obj.GetKind(), obj.GetName())
				checked++
			}
		}
		Expect(checked).To(BeNumerically(">", 20))
	})
})

func ensureNamespace(name string) {
	err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}
