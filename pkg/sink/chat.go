package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// chat posts one formatted message per alert revision that its revision
// policy admits, to a Slack, Teams or Mattermost incoming webhook.
type chat struct {
	p      *httpPoster
	kind   string
	max    int
	policy *revisionPolicy
	// skipped counts revisions the policy held back.
	skipped func(n int)
}

func (c *chat) send(ctx context.Context, recs []Record) (int, error) {
	for i := range recs {
		r := &recs[i]
		now := c.p.now()
		if !c.policy.admit(r.ID, now) {
			c.skipped(1)
			continue
		}
		body, err := fit(*r, c.max, c.encode)
		if err == nil {
			_, err = c.p.post(ctx, body)
		}
		if err != nil {
			return i, err
		}
		c.policy.sent(r.ID, now)
	}
	return len(recs), nil
}

func (c *chat) close() error { c.p.client.CloseIdleConnections(); return nil }

func (c *chat) encode(r *Record) ([]byte, error) {
	switch c.kind {
	case TypeSlack:
		return json.Marshal(slackMessage(r))
	case TypeTeams:
		return json.Marshal(teamsMessage(r))
	default:
		return json.Marshal(mattermostMessage(r))
	}
}

// title is the one-line headline: severity, rule and where.
func title(r *Record) string {
	where := r.Namespace + "/" + r.Pod
	if r.Pod == "" {
		where = "node " + r.Node
	}
	return fmt.Sprintf("%s %s in %s", strings.ToUpper(r.Severity.String()), r.RuleID, where)
}

// facts are the labelled values of a message, attacker-influenced values
// included; each formatter escapes them its own way.
func facts(r *Record) [][2]string {
	fs := [][2]string{{"Namespace", r.Namespace}, {"Pod", r.Pod}, {"Container", r.Container}, {"Node", r.Node},
		{"Workload", strings.Trim(r.Workload.Kind+"/"+r.Workload.Name, "/")}, {"Image", r.Image},
		{"Failures", fmt.Sprint(r.Total)}}
	if len(r.Targets) > 0 {
		fs = append(fs, [2]string{"Denied", alert.TargetSummary(r.Targets)})
	}
	out := fs[:0]
	for _, f := range fs {
		if f[1] != "" {
			out = append(out, f)
		}
	}
	return out
}

func footer(r *Record) string {
	return fmt.Sprintf("alert %s revision %d, first seen %s, last seen %s", r.ID, r.Revision,
		r.FirstSeen.UTC().Format(time.RFC3339), r.LastSeen.UTC().Format(time.RFC3339))
}

// slackText escapes untrusted text for Slack mrkdwn: the three characters
// Slack's formatting reference says to escape (&, <, >: so no <!channel>
// or <url|link> can be forged), and, since it goes inside a `code` span
// where *bold*, _italic_ and ~strike~ do not apply, backticks become ˋ so
// the span cannot be closed early.
func slackText(s string, n int) string {
	s = plain(s, n)
	s = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "`", "ˋ").Replace(s)
	return s
}

// slackCode is untrusted text as a Slack inline code span.
func slackCode(s string, n int) string { return "`" + slackText(s, n) + "`" }

type slackObj struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackBlock struct {
	Type     string     `json:"type"`
	Text     *slackObj  `json:"text,omitempty"`
	Fields   []slackObj `json:"fields,omitempty"`
	Elements []slackObj `json:"elements,omitempty"`
}

type slackPayload struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

// slackMessage follows Slack's Block Kit limits: header plain_text at most
// 150 characters, section text 3000, at most 10 fields of 2000 each.
func slackMessage(r *Record) slackPayload {
	var fields []slackObj
	for _, f := range facts(r) {
		if len(fields) == 10 {
			break
		}
		fields = append(fields, slackObj{"mrkdwn", "*" + f[0] + "*\n" + slackCode(f[1], 1500)})
	}
	blocks := []slackBlock{
		{Type: "header", Text: &slackObj{"plain_text", plain(title(r), 150)}},
		{Type: "section", Text: &slackObj{"mrkdwn", slackCode(r.Message, 2900)}},
	}
	if len(fields) > 0 {
		blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	}
	blocks = append(blocks, slackBlock{Type: "context", Elements: []slackObj{{"mrkdwn", slackText(footer(r), 2000)}}})
	return slackPayload{Text: slackText(title(r), 300), Blocks: blocks}
}

// mdCode is untrusted text as a Markdown code span (Mattermost): inside
// one neither formatting nor @-mentions nor links apply; backticks become
// ˋ so the span cannot be closed early.
func mdCode(s string, n int) string {
	return "`" + strings.ReplaceAll(plain(s, n), "`", "ˋ") + "`"
}

func mattermostMessage(r *Record) map[string]string {
	var b strings.Builder
	fmt.Fprintf(&b, "#### %s\n%s\n\n", mdEscape(plain(title(r), 300)), mdCode(r.Message, 3000))
	b.WriteString("| | |\n|:--|:--|\n")
	for _, f := range facts(r) {
		fmt.Fprintf(&b, "| %s | %s |\n", f[0], strings.ReplaceAll(mdCode(f[1], 1500), "|", "\\|"))
	}
	fmt.Fprintf(&b, "\n%s", mdEscape(plain(footer(r), 500)))
	return map[string]string{"text": b.String()}
}

// mdEscape backslash-escapes Markdown punctuation and breaks @-mentions,
// for untrusted text outside code spans (Mattermost, Teams).
func mdEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '\\', '`', '*', '_', '{', '}', '[', ']', '(', ')', '#', '+', '-', '!', '|', '<', '>', '~', '"', '\'':
			b.WriteByte('\\')
		case '@':
			b.WriteString("@\u200b") // zero-width space: no @channel / @all mention
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// teamsMessage is an Adaptive Card in a message, what Teams' incoming
// webhooks (Workflows) take. TextBlock and FactSet text is Markdown, so
// every untrusted value is escaped.
func teamsMessage(r *Record) map[string]any {
	var fs []map[string]string
	for _, f := range facts(r) {
		fs = append(fs, map[string]string{"title": f[0], "value": mdEscape(plain(f[1], 1500))})
	}
	body := []map[string]any{
		{"type": "TextBlock", "text": mdEscape(plain(title(r), 300)), "weight": "Bolder", "size": "Medium", "wrap": true},
		{"type": "TextBlock", "text": mdEscape(plain(r.Message, 3000)), "wrap": true},
		{"type": "FactSet", "facts": fs},
		{"type": "TextBlock", "text": mdEscape(plain(footer(r), 500)), "isSubtle": true, "size": "Small", "wrap": true},
	}
	return map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"content": map[string]any{
				"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
				"type":    "AdaptiveCard",
				"version": "1.4",
				"body":    body,
			},
		}},
	}
}

// maxPolicyIDs bounds the alert IDs a revision policy remembers; past it
// the oldest are forgotten (and may be notified once more).
const maxPolicyIDs = 65536

// revisionPolicy decides which revisions of an alert make a chat message.
// It remembers in memory, so after a collector restart the next revision
// of an alert notified before is notified once more (docs/sinks.md).
type revisionPolicy struct {
	mode     string
	throttle time.Duration

	mu    sync.Mutex
	last  map[string]time.Time
	order []string // insertion order, for eviction
}

func newRevisionPolicy(mode string, throttle time.Duration) *revisionPolicy {
	return &revisionPolicy{mode: mode, throttle: throttle, last: map[string]time.Time{}}
}

func (p *revisionPolicy) admit(id string, now time.Time) bool {
	if p.mode == RevisionsEvery {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.last[id]
	switch {
	case !ok:
		return true
	case p.mode == RevisionsFirst:
		return false
	default:
		return now.Sub(t) >= p.throttle
	}
}

func (p *revisionPolicy) sent(id string, now time.Time) {
	if p.mode == RevisionsEvery {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.last[id]; !ok {
		if len(p.order) >= maxPolicyIDs {
			delete(p.last, p.order[0])
			p.order = p.order[1:]
		}
		p.order = append(p.order, id)
	}
	p.last[id] = now
}
