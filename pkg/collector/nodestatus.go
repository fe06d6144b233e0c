package collector

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/validation"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// statusEvery is how often one node's status is written at most: agents
// report with every batch, and a heartbeat every 15 s.
const statusEvery = 5 * time.Second

// nodeStatuses keeps agents' reports of their own health in the store
// (store.NodeStatuses), for the web UI's node list, writing each node at
// most every statusEvery.
type nodeStatuses struct {
	store store.NodeStatuses // nil: the store keeps none
	mu    sync.Mutex
	last  map[string]time.Time // node -> last write
}

func newNodeStatuses(st store.Store) nodeStatuses {
	ns, _ := st.(store.NodeStatuses)
	return nodeStatuses{store: ns, last: map[string]time.Time{}}
}

// keepStatus records st, sent by an agent whose node is node ("" for a
// publisher the collector knows no node of: the local socket). A status
// never fails its batch: the alerts matter more. One that names another
// node than the agent's, names no valid node, or finds the store full is
// counted (refused_total{reason="node_status"}), logged and dropped; one
// with no node at all, from a standalone agent without a node name, is
// dropped quietly.
func (s *Server) keepStatus(ctx context.Context, log *zap.Logger, node string, st *errnowatchv1.AgentStatus) {
	ns := &s.statuses
	if ns.store == nil {
		return
	}
	name := st.GetNode()
	refuse := func(why string, err error) {
		s.metrics.refuse(refusedNodeStatus, 1)
		log.Warn("dropped an agent status: "+why, zap.String("status_node", name), zap.String("agent_node", node), zap.Error(err))
	}
	switch {
	case node != "" && name != "" && name != node:
		refuse("an agent reports its own node only (check its NODE_NAME)", nil)
		return
	case node != "":
		name = node
	case name == "":
		// A standalone agent without a node name (--no-kubernetes): its
		// alerts name no node either, and there is nothing to key it by.
		return
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		refuse("not a node name", errors.New(errs[0]))
		return
	}
	now := time.Now()
	ns.mu.Lock()
	if now.Sub(ns.last[name]) < statusEvery {
		ns.mu.Unlock()
		return
	}
	if len(ns.last) >= store.MaxNodeStatuses {
		clear(ns.last)
	}
	ns.last[name] = now
	ns.mu.Unlock()
	err := ns.store.PutNodeStatus(ctx, store.NodeStatus{
		Node: name, ReceivedAt: now, SensorAttached: st.GetSensorAttached(),
		RingDrops: st.GetRingDrops(), QueueDrops: st.GetQueueDrops(), MapFull: st.GetMapFull(),
		Overflowed: st.GetOverflowed(), SpoolRecords: st.GetSpoolRecords(), SpoolDropped: st.GetSpoolDropped(),
		SpoolOldest: time.Duration(min(st.GetSpoolOldestSeconds(), uint64(100*365*24*3600))) * time.Second,
	})
	if err != nil {
		refuse("the store did not keep it", err)
	}
}
