package kube

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/cache"
)

// owners resolves a pod's controller to its workload, getting the metadata
// of ReplicaSets and Jobs from the API once per owner UID.
type owners struct {
	client  *Client
	log     *zap.Logger
	cache   *cache.LRUExpireCache // owner UID -> Workload
	ttl     time.Duration
	timeout time.Duration

	gets, fallbacks atomic.Uint64
	forbidWarned    atomic.Bool
}

// The fallback answer of a failed get is kept for a shorter time, so that a
// transient error or an RBAC fix is picked up soon.
const fallbackTTL = time.Minute

// The resources owners gets; only their metadata (ownerReferences) is read.
var (
	replicaSets = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	jobs        = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
)

func newOwners(client *Client, log *zap.Logger, size int, ttl, timeout time.Duration) *owners {
	return &owners{client: client, log: log, cache: cache.NewLRUExpireCache(size), ttl: ttl, timeout: timeout}
}

// workload returns the workload of a (stripped) pod.
func (o *owners) workload(ctx context.Context, pod *corev1.Pod) Workload {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return Workload{Kind: "Pod", Name: pod.Name}
	}
	if ref.Kind != "ReplicaSet" && ref.Kind != "Job" {
		return Workload{Kind: ref.Kind, Name: ref.Name}
	}
	if w, ok := o.cache.Get(ref.UID); ok {
		return w.(Workload)
	}
	w, ttl := o.get(ctx, pod, ref)
	o.cache.Add(ref.UID, w, ttl)
	return w
}

// get asks the API for the owner of the pod's ReplicaSet or Job.
func (o *owners) get(ctx context.Context, pod *corev1.Pod, ref *metav1.OwnerReference) (Workload, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	o.gets.Add(1)
	var meta metav1.Object
	var err error
	switch ref.Kind {
	case "ReplicaSet":
		meta, err = o.client.ObjectMeta(ctx, replicaSets, pod.Namespace, ref.Name)
	case "Job":
		meta, err = o.client.ObjectMeta(ctx, jobs, pod.Namespace, ref.Name)
	}
	if err == nil && meta.GetUID() != ref.UID {
		// A newer object of the same name; ours is gone.
		err = apierrors.NewNotFound(corev1.Resource(strings.ToLower(ref.Kind)+"s"), ref.Name)
	}
	if err != nil {
		o.fallbacks.Add(1)
		if apierrors.IsForbidden(err) && o.forbidWarned.CompareAndSwap(false, true) {
			o.log.Warn("cannot get pod owners, guessing Deployments from ReplicaSet names; "+
				"grant get on apps/replicasets and batch/jobs to resolve Deployments and CronJobs exactly",
				zap.String("namespace", pod.Namespace), zap.String("owner", ref.Kind+"/"+ref.Name), zap.Error(err))
		} else if !apierrors.IsForbidden(err) && !apierrors.IsNotFound(err) {
			o.log.Debug("get pod owner", zap.String("namespace", pod.Namespace),
				zap.String("owner", ref.Kind+"/"+ref.Name), zap.Error(err))
		}
		return fallback(pod, ref), fallbackTTL
	}
	if up := metav1.GetControllerOf(meta); up != nil {
		// Usually a Deployment or a CronJob; another controller (an Argo
		// Rollout, say) is equally what a person wrote.
		return Workload{Kind: up.Kind, Name: up.Name}, o.ttl
	}
	return Workload{Kind: ref.Kind, Name: ref.Name}, o.ttl
}

// fallback guesses the workload without the API: the Deployment controller
// names a ReplicaSet "<deployment>-<pod-template-hash>" and labels its pods
// with that hash. Nothing as reliable names a Job's CronJob, so a Job stays a
// Job.
func fallback(pod *corev1.Pod, ref *metav1.OwnerReference) Workload {
	if ref.Kind == "ReplicaSet" {
		if h := pod.Labels[templateHashLabel]; h != "" {
			if d, ok := strings.CutSuffix(ref.Name, "-"+h); ok && d != "" {
				return Workload{Kind: "Deployment", Name: d}
			}
		}
	}
	return Workload{Kind: ref.Kind, Name: ref.Name}
}
