package kube

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NodeNameEnv is the environment variable the DaemonSet sets from the
// downward API (fieldRef spec.nodeName).
const NodeNameEnv = "NODE_NAME"

// RESTConfig returns the client config for the API server: from the
// kubeconfig file when one is given, else the pod's service account when
// running in a pod, else $KUBECONFIG or ~/.kube/config.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
		}
	default:
		cfg, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
			if clientcmd.IsEmptyConfig(err) {
				return nil, errors.New("no Kubernetes API config: pass --kubeconfig, set KUBECONFIG, " +
					"or run in a pod with a service account")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("load Kubernetes API config: %w", err)
		}
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "errnowatch"
	}
	return cfg, nil
}

// NodeName returns flag, or $NODE_NAME when flag is empty, and says what to
// do when both are empty.
func NodeName(flag string) (string, error) {
	n := strings.TrimSpace(flag)
	if n == "" {
		n = strings.TrimSpace(os.Getenv(NodeNameEnv))
	}
	if n == "" {
		return "", fmt.Errorf("node name unknown: pass --node-name or set %s "+
			"(in the DaemonSet, from the downward API fieldRef spec.nodeName)", NodeNameEnv)
	}
	return n, nil
}
