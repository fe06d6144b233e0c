package kube

import (
	"context"
	"fmt"
	"net/http"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Client is errnowatch's whole use of the Kubernetes API: the node's pods
// (list, watch, get), the metadata of their owners, TokenReview and
// SubjectAccessReview. It is built on client-go's REST and metadata
// clients with a scheme of only the types it sends and receives.
//
// Why not client-go's clientset (kubernetes.NewForConfig): linking it
// registers every type of every built-in API group (about 50 group
// versions) in its scheme when the binary starts, which the agent, on
// every node, paid for in heap and in start-up pages without using one of
// them.
type Client struct {
	core, authn, authz *rest.RESTClient
	meta               metadata.Interface
}

// scheme holds the types Client decodes and encodes, and codecs their
// serializers (JSON and protobuf).
var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

func init() {
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(authnv1.AddToScheme(scheme))
	utilruntime.Must(authzv1.AddToScheme(scheme))
}

// NewClient makes a Client for cfg; its clients share one HTTP client, so
// one set of connections.
func NewClient(cfg *rest.Config) (*Client, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	c := &Client{}
	for _, g := range []struct {
		rc   **rest.RESTClient
		path string
		gv   schema.GroupVersion
	}{
		{&c.core, "/api", corev1.SchemeGroupVersion},
		{&c.authn, "/apis", authnv1.SchemeGroupVersion},
		{&c.authz, "/apis", authzv1.SchemeGroupVersion},
	} {
		if *g.rc, err = restClient(cfg, hc, g.path, g.gv); err != nil {
			return nil, fmt.Errorf("kubernetes client for %s: %w", g.gv, err)
		}
	}
	if c.meta, err = metadata.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, fmt.Errorf("kubernetes metadata client: %w", err)
	}
	return c, nil
}

func restClient(cfg *rest.Config, hc *http.Client, path string, gv schema.GroupVersion) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.APIPath = path
	c.GroupVersion = &gv
	c.NegotiatedSerializer = codecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientForConfigAndClient(c, hc)
}

// PodListWatch lists and watches the pods of all namespaces that match
// fieldSelector (for an informer).
func (c *Client) PodListWatch(fieldSelector string) cache.ListerWatcher {
	return cache.NewFilteredListWatchFromClient(c.core, "pods", metav1.NamespaceAll,
		func(lo *metav1.ListOptions) { lo.FieldSelector = fieldSelector })
}

// Pod gets one pod.
func (c *Client) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	p := &corev1.Pod{}
	err := c.core.Get().Namespace(namespace).Resource("pods").Name(name).Do(ctx).Into(p)
	return p, err
}

// ObjectMeta gets the metadata of one namespaced object of resource.
func (c *Client) ObjectMeta(ctx context.Context, resource schema.GroupVersionResource, namespace, name string) (*metav1.PartialObjectMetadata, error) {
	return c.meta.Resource(resource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
}

// TokenReview asks the API server who a token belongs to.
func (c *Client) TokenReview(ctx context.Context, tr *authnv1.TokenReview) (*authnv1.TokenReview, error) {
	res := &authnv1.TokenReview{}
	err := c.authn.Post().Resource("tokenreviews").Body(tr).Do(ctx).Into(res)
	return res, err
}

// SubjectAccessReview asks the API server whether a user may do something.
func (c *Client) SubjectAccessReview(ctx context.Context, sar *authzv1.SubjectAccessReview) (*authzv1.SubjectAccessReview, error) {
	res := &authzv1.SubjectAccessReview{}
	err := c.authz.Post().Resource("subjectaccessreviews").Body(sar).Do(ctx).Into(res)
	return res, err
}
