package kube

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
)

// Pod is what enrichment knows of one pod. A Pod is never changed once
// handed out: a change in the API makes a new one.
type Pod struct {
	UID       string
	Namespace string
	Name      string
	Node      string
	// Labels are the pod's labels that the LabelFilter kept.
	Labels   map[string]string
	Workload Workload
	// Containers are the init, regular and ephemeral containers, in that
	// order, with the IDs their statuses report.
	Containers []Container
	// MirrorOf is the static pod's hash (the UID in its cgroup path) when
	// this is the API's mirror of a static pod.
	MirrorOf string
	// Deleted is true once the API server has deleted the pod; it stays
	// known for Options.DeletedTTL.
	Deleted bool
}

// Workload is the controller a person wrote for the pod: Deployment,
// DaemonSet, StatefulSet, CronJob, Job, ReplicaSet (without a Deployment),
// another controller's kind, or Pod for a pod without one.
type Workload struct {
	Kind string
	Name string
}

// ContainerKind tells the three kinds of containers apart.
type ContainerKind string

// Container kinds.
const (
	InitContainer      ContainerKind = "init"
	RegularContainer   ContainerKind = "regular"
	EphemeralContainer ContainerKind = "ephemeral"
)

// Container is one container of a pod.
type Container struct {
	Name  string
	Image string
	Kind  ContainerKind
	// ID is the bare id of the running (or last) container, "" before the
	// runtime reported it.
	ID string
	// PreviousID is the bare id of the container before its last restart.
	PreviousID string
	// Runtime is "containerd", "crio" or "docker", from the status's
	// "<runtime>://" prefix.
	Runtime string
}

// ContainerByID returns the container whose current or previous id is id.
func (p *Pod) ContainerByID(id string) (Container, bool) {
	if id == "" {
		return Container{}, false
	}
	for _, c := range p.Containers {
		if c.ID == id || c.PreviousID == id {
			return c, true
		}
	}
	return Container{}, false
}

// containerIDs returns every bare container id the pod's status holds.
func (p *Pod) containerIDs() []string {
	var ids []string
	for _, c := range p.Containers {
		if c.ID != "" {
			ids = append(ids, c.ID)
		}
		if c.PreviousID != "" {
			ids = append(ids, c.PreviousID)
		}
	}
	return ids
}

// Annotations and labels that the transform keeps whatever the filters say.
const (
	// mirrorAnnotation holds a static pod's hash on its mirror pod.
	mirrorAnnotation = corev1.MirrorPodAnnotationKey
	// templateHashLabel is what the Deployment controller appends to its
	// ReplicaSets' names; the owner fallback needs it.
	templateHashLabel = "pod-template-hash"
)

// strip is the informer's transform: it returns a pod that holds only what
// newPod reads, so that the store stays small. Anything but a *corev1.Pod
// (the informer's tombstones) passes through. strip of a stripped pod is the
// same pod.
func strip(labels LabelFilter, keepAnnotations []string) func(any) (any, error) {
	return func(obj any) (any, error) {
		in, ok := obj.(*corev1.Pod)
		if !ok {
			return obj, nil
		}
		out := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name:              in.Name,
				Namespace:         in.Namespace,
				UID:               in.UID,
				ResourceVersion:   in.ResourceVersion,
				DeletionTimestamp: in.DeletionTimestamp,
			},
			Spec: corev1.PodSpec{NodeName: in.Spec.NodeName},
		}
		for k, v := range in.Labels {
			if k == templateHashLabel || labels.Keep(k) {
				if out.Labels == nil {
					out.Labels = make(map[string]string, 4)
				}
				out.Labels[k] = v
			}
		}
		for _, k := range append([]string{mirrorAnnotation}, keepAnnotations...) {
			if v, ok := in.Annotations[k]; ok {
				if out.Annotations == nil {
					out.Annotations = map[string]string{}
				}
				out.Annotations[k] = v
			}
		}
		if ref := metav1.GetControllerOf(in); ref != nil {
			out.OwnerReferences = []metav1.OwnerReference{{
				APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID, Controller: ref.Controller,
			}}
		}
		for _, c := range in.Spec.InitContainers {
			out.Spec.InitContainers = append(out.Spec.InitContainers, corev1.Container{Name: c.Name, Image: c.Image})
		}
		for _, c := range in.Spec.Containers {
			out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
		}
		for _, c := range in.Spec.EphemeralContainers {
			out.Spec.EphemeralContainers = append(out.Spec.EphemeralContainers, corev1.EphemeralContainer{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c.Name, Image: c.Image},
			})
		}
		out.Status.InitContainerStatuses = stripStatuses(in.Status.InitContainerStatuses)
		out.Status.ContainerStatuses = stripStatuses(in.Status.ContainerStatuses)
		out.Status.EphemeralContainerStatuses = stripStatuses(in.Status.EphemeralContainerStatuses)
		return out, nil
	}
}

func stripStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, s := range in {
		o := corev1.ContainerStatus{Name: s.Name, ContainerID: s.ContainerID}
		if t := s.LastTerminationState.Terminated; t != nil && t.ContainerID != "" {
			o.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: t.ContainerID}
		}
		out = append(out, o)
	}
	return out
}

// newPod builds the Pod of a stripped API pod.
func newPod(in *corev1.Pod, labels LabelFilter, w Workload) *Pod {
	p := &Pod{
		UID:       string(in.UID),
		Namespace: in.Namespace,
		Name:      in.Name,
		Node:      in.Spec.NodeName,
		Labels:    labels.apply(in.Labels),
		Workload:  w,
		MirrorOf:  in.Annotations[mirrorAnnotation],
	}
	add := func(kind ContainerKind, name, image string, statuses []corev1.ContainerStatus) {
		c := Container{Name: name, Image: image, Kind: kind}
		for _, s := range statuses {
			if s.Name != name {
				continue
			}
			c.Runtime, c.ID = cgroup.ContainerIDFromStatus(s.ContainerID)
			if t := s.LastTerminationState.Terminated; t != nil && t.ContainerID != "" {
				_, c.PreviousID = cgroup.ContainerIDFromStatus(t.ContainerID)
			}
			break
		}
		p.Containers = append(p.Containers, c)
	}
	for _, c := range in.Spec.InitContainers {
		add(InitContainer, c.Name, c.Image, in.Status.InitContainerStatuses)
	}
	for _, c := range in.Spec.Containers {
		add(RegularContainer, c.Name, c.Image, in.Status.ContainerStatuses)
	}
	for _, c := range in.Spec.EphemeralContainers {
		add(EphemeralContainer, c.Name, c.Image, in.Status.EphemeralContainerStatuses)
	}
	return p
}
