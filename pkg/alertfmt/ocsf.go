package alertfmt

import (
	"net/netip"
	"path"
	"strconv"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// OCSF mapping: every stored alert revision becomes one OCSF 1.1 Detection
// Finding (class_uid 2004, category_uid 2 "Findings").
//
//	activity_id       1 Create for revision 1, 2 Update for later revisions
//	type_uid          class_uid*100 + activity_id (200401, 200402)
//	severity_id       alert severity; the numbers coincide (1 Informational
//	                  .. 5 Critical)
//	status_id         1 New
//	time              last_seen (ms); start_time first_seen; end_time
//	                  last_seen
//	count             total failures in the window that matched
//	message           alert message
//	finding_info      uid = alert id (stable across revisions), title = rule
//	                  id, desc = description, types = tags, first/last_seen_time,
//	                  created_time = first_seen, modified_time = last_seen,
//	                  analytic = the rule (type_id 1 "Rule")
//	resources[0]      the pod (type "Pod": name, namespace, uid = pod UID,
//	                  data = container, container_id, image, workload, node,
//	                  cgroup_path) or, for host alerts, the node (type "Node")
//	metadata          product errnowatch, version "1.1.0" (OCSF schema),
//	                  uid = "<id>/<revision>", sequence = store sequence (the
//	                  stream cursor), logged_time = stored time
//	evidences         one per denied target: a path as file (name, path,
//	                  type_id 1 "Regular File", or 5 "Local Socket" for a
//	                  unix socket address), an IP address as dst_endpoint
//	                  (ip, port); data = syscall, errno, count
//	unmapped          revision, group_by, per-syscall/errno counts, processes
const (
	ocsfVersion      = "1.1.0"
	ocsfClassUID     = 2004
	ocsfCategoryUID  = 2
	ocsfActivityNew  = 1
	ocsfActivityUpd  = 2
	ocsfStatusNew    = 1
	ocsfAnalyticRule = 1
)

var ocsfSeverity = map[alert.Severity]string{
	alert.SeverityUnknown:  "Unknown",
	alert.SeverityInfo:     "Informational",
	alert.SeverityLow:      "Low",
	alert.SeverityMedium:   "Medium",
	alert.SeverityHigh:     "High",
	alert.SeverityCritical: "Critical",
}

// DetectionFinding is the subset of OCSF Detection Finding errnowatch fills.
type DetectionFinding struct {
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	TypeUID      int    `json:"type_uid"`
	TypeName     string `json:"type_name"`
	SeverityID   int    `json:"severity_id"`
	Severity     string `json:"severity"`
	StatusID     int    `json:"status_id"`
	Status       string `json:"status"`
	Time         int64  `json:"time"`
	StartTime    int64  `json:"start_time"`
	EndTime      int64  `json:"end_time"`
	Count        uint64 `json:"count"`
	Message      string `json:"message"`

	FindingInfo OCSFFindingInfo `json:"finding_info"`
	Resources   []OCSFResource  `json:"resources"`
	Evidences   []OCSFEvidence  `json:"evidences,omitempty"`
	Metadata    OCSFMetadata    `json:"metadata"`
	Unmapped    OCSFUnmapped    `json:"unmapped"`
}

// OCSFFindingInfo is OCSF finding_info.
type OCSFFindingInfo struct {
	UID           string       `json:"uid"`
	Title         string       `json:"title"`
	Desc          string       `json:"desc,omitempty"`
	Types         []string     `json:"types,omitempty"`
	CreatedTime   int64        `json:"created_time"`
	ModifiedTime  int64        `json:"modified_time"`
	FirstSeenTime int64        `json:"first_seen_time"`
	LastSeenTime  int64        `json:"last_seen_time"`
	Analytic      OCSFAnalytic `json:"analytic"`
}

// OCSFAnalytic is OCSF analytic: the rule that raised the alert.
type OCSFAnalytic struct {
	UID    string `json:"uid"`
	Name   string `json:"name"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
}

// OCSFResource is OCSF resource_details.
type OCSFResource struct {
	Type      string            `json:"type"`
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	UID       string            `json:"uid,omitempty"`
	Data      map[string]string `json:"data,omitempty"`
}

// OCSFEvidence is an OCSF Evidence Artifacts object: one denied target.
type OCSFEvidence struct {
	File        *OCSFFile            `json:"file,omitempty"`
	DstEndpoint *OCSFNetworkEndpoint `json:"dst_endpoint,omitempty"`
	Data        OCSFEvidenceData     `json:"data"`
}

// OCSFFile is an OCSF File object.
type OCSFFile struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
}

// OCSFNetworkEndpoint is an OCSF Network Endpoint object.
type OCSFNetworkEndpoint struct {
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

// OCSFEvidenceData says how the target was denied.
type OCSFEvidenceData struct {
	Syscall string `json:"syscall"`
	Errno   string `json:"errno"`
	Count   uint64 `json:"count"`
}

// OCSF File type_id values.
const (
	ocsfFileRegular     = 1
	ocsfFileLocalSocket = 5
)

func ocsfEvidences(ts []alert.Target) []OCSFEvidence {
	var out []OCSFEvidence
	for _, t := range ts {
		e := OCSFEvidence{Data: OCSFEvidenceData{Syscall: t.Syscall, Errno: t.Errno, Count: t.Count}}
		if ap, err := netip.ParseAddrPort(t.Target); t.Kind == alert.TargetNetwork && err == nil {
			e.DstEndpoint = &OCSFNetworkEndpoint{IP: ap.Addr().String(), Port: int(ap.Port())}
		} else {
			f := &OCSFFile{Name: path.Base(t.Target), Path: t.Target, TypeID: ocsfFileRegular, Type: "Regular File"}
			if t.Kind == alert.TargetNetwork {
				f.TypeID, f.Type = ocsfFileLocalSocket, "Local Socket"
			}
			e.File = f
		}
		out = append(out, e)
	}
	return out
}

// OCSFMetadata is OCSF metadata.
type OCSFMetadata struct {
	Version    string      `json:"version"`
	Product    OCSFProduct `json:"product"`
	UID        string      `json:"uid"`
	Sequence   uint64      `json:"sequence"`
	LoggedTime int64       `json:"logged_time"`
}

// OCSFProduct is OCSF product.
type OCSFProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

// OCSFUnmapped carries errnowatch fields OCSF has no place for.
type OCSFUnmapped struct {
	Revision  uint32          `json:"revision"`
	GroupBy   alert.GroupBy   `json:"group_by,omitempty"`
	Counts    []alert.Count   `json:"counts,omitempty"`
	Processes []alert.Process `json:"processes,omitempty"`
}

// OCSF maps a stored alert to a Detection Finding (see the table above).
func OCSF(r *Record) DetectionFinding {
	a := &r.Alert
	act, actName := ocsfActivityNew, "Create"
	if a.Revision > 1 {
		act, actName = ocsfActivityUpd, "Update"
	}
	first, last := a.FirstSeen.UnixMilli(), a.LastSeen.UnixMilli()
	res := OCSFResource{Type: "Pod", Name: a.Pod, Namespace: a.Namespace, UID: a.PodUID, Data: map[string]string{}}
	if a.Host || a.Pod == "" {
		res = OCSFResource{Type: "Node", Name: a.Node, Data: map[string]string{}}
	}
	for k, v := range map[string]string{
		"container": a.Container, "container_id": a.ContainerID, "image": a.Image,
		"workload_kind": a.Workload.Kind, "workload_name": a.Workload.Name,
		"node": a.Node, "cgroup_path": a.CgroupPath,
	} {
		if v != "" {
			res.Data[k] = v
		}
	}
	return DetectionFinding{
		ActivityID:   act,
		ActivityName: actName,
		CategoryUID:  ocsfCategoryUID,
		CategoryName: "Findings",
		ClassUID:     ocsfClassUID,
		ClassName:    "Detection Finding",
		TypeUID:      ocsfClassUID*100 + act,
		TypeName:     "Detection Finding: " + actName,
		SeverityID:   int(a.Severity),
		Severity:     ocsfSeverity[a.Severity],
		StatusID:     ocsfStatusNew,
		Status:       "New",
		Time:         last,
		StartTime:    first,
		EndTime:      last,
		Count:        a.Total,
		Message:      a.Message,
		FindingInfo: OCSFFindingInfo{
			UID:           a.ID,
			Title:         a.RuleID,
			Desc:          a.Description,
			Types:         a.Tags,
			CreatedTime:   first,
			ModifiedTime:  last,
			FirstSeenTime: first,
			LastSeenTime:  last,
			Analytic:      OCSFAnalytic{UID: a.RuleID, Name: a.RuleID, TypeID: ocsfAnalyticRule, Type: "Rule"},
		},
		Resources: []OCSFResource{res},
		Evidences: ocsfEvidences(a.Targets),
		Metadata: OCSFMetadata{
			Version:    ocsfVersion,
			Product:    OCSFProduct{Name: "errnowatch", VendorName: "errnowatch"},
			UID:        a.ID + "/" + strconv.FormatUint(uint64(a.Revision), 10),
			Sequence:   r.Sequence,
			LoggedTime: r.StoredTime.UnixMilli(),
		},
		Unmapped: OCSFUnmapped{Revision: a.Revision, GroupBy: a.GroupBy, Counts: a.Counts, Processes: a.Processes},
	}
}
