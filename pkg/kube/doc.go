// Package kube is the second half of enrichment's inputs: it watches the pods
// bound to this node in the Kubernetes API and answers, by pod UID or by
// container ID, which namespace, pod, container, image and owning workload
// they are. It hands a compact Pod to pkg/enrich, which joins it with what
// pkg/cgroup read from the cgroup path.
//
// # What is watched, and what is kept
//
// One client-go shared informer lists and watches pods with the field
// selector spec.nodeName=<node>, so a node's agent sees only its own pods and
// the API server filters for it. A transform (SetTransform) runs before
// anything is stored and keeps only what enrichment needs: name, namespace,
// UID, the controller owner reference, the kept labels, the static-pod mirror
// annotation, each container's name and image, and each container status's
// name and container IDs (current and last terminated). managedFields, the
// rest of the spec, the rest of the status and all other annotations are
// dropped, so a node with a thousand pods costs a few MiB.
//
// # Labels
//
// Pod labels are filtered by a LabelFilter. The default keeps the
// recommended labels (every key with the prefix app.kubernetes.io/) and the
// common conventional ones: app, k8s-app, component, tier, version, release,
// team, env, environment. These name what runs and who owns it without
// copying every label a chart adds. pod-template-hash is kept in the store
// (for the owner fallback below) but not shown.
//
// # Indexes
//
// Pods are indexed by UID, by the static-pod hash in their
// kubernetes.io/config.mirror annotation (a static pod's cgroup carries that
// hash, not the mirror pod's UID), and by every container ID in their status:
// init, regular and ephemeral containers, current and last terminated (so the
// previous container of a restarted one still resolves). The status form
// "containerd://<id>", "cri-o://<id>" or "docker://<id>" is indexed as the
// bare id that cgroup paths carry (cgroup.ContainerIDFromStatus).
//
// # Owners
//
// A pod's workload is its controller owner reference, resolved to the object
// a person wrote: a ReplicaSet to its Deployment and a Job to its CronJob, by
// getting the ReplicaSet or Job once from the API (RBAC: get on
// apps/replicasets and batch/jobs). Answers are cached per owner UID in a
// bounded LRU with a TTL. When the get is forbidden or fails, a ReplicaSet
// whose name ends in "-<pod-template-hash>" is taken to belong to the
// Deployment named by the rest (what the Deployment controller does); any
// other ReplicaSet, and a Job, are reported as themselves. DaemonSet,
// StatefulSet and any other controller kind are reported as the owner
// reference says; a pod without a controller is its own workload (kind Pod).
//
// # Deleted pods
//
// Records and counts of a pod keep arriving after the API server deleted it
// (the kernel drains every interval, and a terminating pod's processes may
// outlive the API object). Deleted pods therefore stay resolvable, marked
// Deleted, for Options.DeletedTTL (60 s by default), at most
// Options.MaxDeleted of them, oldest dropped first.
package kube
