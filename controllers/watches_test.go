package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

func TestTheWatchesSkipOnlyTheFirstListsCreations(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"}}
	if notInInitialList.Create(event.CreateEvent{Object: pod, IsInInitialList: true}) {
		t.Error("a creation of the first list passed")
	}
	if !notInInitialList.Create(event.CreateEvent{Object: pod}) {
		t.Error("a creation after the first list was dropped")
	}
	if !notInInitialList.Update(event.UpdateEvent{ObjectOld: pod, ObjectNew: pod}) || !notInInitialList.Delete(event.DeleteEvent{Object: pod}) {
		t.Error("a change or a deletion was dropped")
	}
}
