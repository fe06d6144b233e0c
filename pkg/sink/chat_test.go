package sink

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// hostile is an alert whose attacker-chosen fields try to break out of
// each format: Slack's <!channel> and links, Markdown, mentions, code
// spans, terminal escapes, newlines, bidi overrides, syslog and CEF
// delimiters.
func hostile() Record {
	a := gen(1, 1)[0]
	a.Pod = "pwn-<!channel>-@here-`x`"
	a.Namespace = "ns|a=b\\"
	a.Message = "opened *bold* _it_ ~s~ <https://evil.example|click> [x](https://evil.example) `code` \x1b[2J\nline2 \u202eevil"
	a.Processes[0].Comm = "sh\"] [x@1 a=\"b"
	a.Targets[0].Target = "/etc/sha]dow\" \\ = |"
	return Record{Sequence: 9, StoredTime: base, Alert: a}
}

// checkSlackPayload checks a body against Slack's documented incoming
// webhook format (api.slack.com/messaging/webhooks, Block Kit reference):
// a top-level text, blocks of known types with their documented length
// limits, mrkdwn text with &, < and > escaped.
func checkSlackPayload(body []byte) error {
	var p struct {
		Text   *string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"text"`
			Fields []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"fields"`
			Elements []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if p.Text == nil || *p.Text == "" {
		return fmt.Errorf("no top-level text (Slack uses it for notifications)")
	}
	if len(p.Blocks) == 0 || len(p.Blocks) > 50 {
		return fmt.Errorf("%d blocks, want 1 to 50", len(p.Blocks))
	}
	mrkdwn := []string{*p.Text}
	for i, b := range p.Blocks {
		switch b.Type {
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" || utf8.RuneCountInString(b.Text.Text) > 150 {
				return fmt.Errorf("block %d: a header takes plain_text of at most 150 characters", i)
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				return fmt.Errorf("block %d: a section needs text or fields", i)
			}
			if b.Text != nil {
				if b.Text.Type != "mrkdwn" || utf8.RuneCountInString(b.Text.Text) > 3000 {
					return fmt.Errorf("block %d: section text over 3000 characters or not mrkdwn", i)
				}
				mrkdwn = append(mrkdwn, b.Text.Text)
			}
			if len(b.Fields) > 10 {
				return fmt.Errorf("block %d: %d fields, at most 10", i, len(b.Fields))
			}
			for _, f := range b.Fields {
				if f.Type != "mrkdwn" || utf8.RuneCountInString(f.Text) > 2000 {
					return fmt.Errorf("block %d: field over 2000 characters or not mrkdwn", i)
				}
				mrkdwn = append(mrkdwn, f.Text)
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > 10 {
				return fmt.Errorf("block %d: context needs 1 to 10 elements", i)
			}
			for _, e := range b.Elements {
				mrkdwn = append(mrkdwn, e.Text)
			}
		default:
			return fmt.Errorf("block %d: unexpected type %q", i, b.Type)
		}
	}
	for _, s := range mrkdwn {
		if strings.ContainsAny(s, "<>\x1b\u202e") {
			return fmt.Errorf("mrkdwn %q holds an unescaped <, >, escape or bidi character", s)
		}
		if strings.Count(s, "\n") > 1 || strings.Count(s, "`")%2 != 0 {
			return fmt.Errorf("mrkdwn %q: a forged line or an unclosed code span", s)
		}
	}
	return nil
}

func TestSlackPayloadFollowsSlacksFormatAndEscapes(t *testing.T) {
	var got [][]byte
	rc := newReceiver(t, func(r *http.Request, body []byte) error {
		got = append(got, body)
		if r.Header.Get("Content-Type") != "application/json" {
			return fmt.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		return checkSlackPayload(body)
	})
	t.Setenv("TEST_SLACK_URL", rc.srv.URL+"/services/T000/B000/XXXX")
	st := openStore(t)
	start(t, st, `
sinks:
- name: slack
  type: slack
  startAt: beginning
  chat: {url: {env: TEST_SLACK_URL}, revisions: every}
`, Options{})
	h := hostile()
	insert(t, st, []alert.Alert{h.Alert})
	eventually(t, 10*time.Second, "the message posted", func() bool { return rc.count() == 1 })
	var doc any
	if err := json.Unmarshal(got[0], &doc); err != nil {
		t.Fatal(err)
	}
	body := strings.Join(stringsIn(doc), "\n")
	for _, bad := range []string{"<!channel>", "<https://evil", "\x1b", "\u202e"} {
		if strings.Contains(body, bad) {
			t.Errorf("payload holds %q unescaped:\n%s", bad, got[0])
		}
	}
	if !strings.Contains(body, "&lt;!channel&gt;") {
		t.Errorf("payload lost the escaped pod name:\n%s", got[0])
	}
}

// stringsIn returns every string value in a decoded JSON document, except
// the header's plain_text (Slack shows it as is, it is never parsed).
func stringsIn(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, stringsIn(e)...)
		}
		return out
	case map[string]any:
		if v["type"] == "plain_text" {
			return nil
		}
		var out []string
		for _, e := range v {
			out = append(out, stringsIn(e)...)
		}
		return out
	}
	return nil
}

func TestChatFormatsEscapeHostileText(t *testing.T) {
	r := hostile()
	mm := mattermostMessage(&r)["text"]
	for _, line := range strings.Split(mm, "\n") {
		// Outside code spans no @-mention, link or emphasis survives.
		outside := ""
		for i, part := range strings.Split(line, "`") {
			if i%2 == 0 {
				outside += part
			}
		}
		if strings.Contains(outside, "@here") || strings.Contains(outside, "](") {
			t.Errorf("mattermost line %q has a live mention or link", line)
		}
		if strings.Count(line, "`")%2 != 0 {
			t.Errorf("mattermost line %q has an unclosed code span", line)
		}
	}
	if strings.Contains(mm, "\x1b") || strings.Contains(mm, "\u202e") {
		t.Errorf("mattermost text holds a raw control or bidi character")
	}
	b, err := json.Marshal(teamsMessage(&r))
	if err != nil {
		t.Fatal(err)
	}
	var card struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type    string `json:"type"`
				Version string `json:"version"`
				Body    []struct {
					Type  string                          `json:"type"`
					Text  string                          `json:"text"`
					Facts []struct{ Title, Value string } `json:"facts"`
				} `json:"body"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(b, &card); err != nil || card.Type != "message" || len(card.Attachments) != 1 ||
		card.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
		card.Attachments[0].Content.Type != "AdaptiveCard" {
		t.Fatalf("teams message is not a message with one Adaptive Card: %v\n%s", err, b)
	}
	for _, el := range card.Attachments[0].Content.Body {
		texts := []string{el.Text}
		for _, f := range el.Facts {
			texts = append(texts, f.Value)
		}
		for _, s := range texts {
			if strings.Contains(s, "[x](") || strings.Contains(s, " *bold*") || strings.Contains(s, "\n") {
				t.Errorf("teams text %q has live Markdown or a line break", s)
			}
		}
	}
}

func TestRevisionPolicies(t *testing.T) {
	now := base
	first := newRevisionPolicy(RevisionsFirst, 0)
	every := newRevisionPolicy(RevisionsEvery, 0)
	thr := newRevisionPolicy(RevisionsThrottle, 10*time.Minute)
	var sent [3]int
	for i, p := range []*revisionPolicy{first, every, thr} {
		for k := range 30 { // one revision a minute for 30 minutes
			at := now.Add(time.Duration(k) * time.Minute)
			if p.admit("A", at) {
				p.sent("A", at)
				sent[i]++
			}
		}
	}
	if sent != [3]int{1, 30, 3} {
		t.Fatalf("messages sent (first, every, throttle 10m) = %v, want [1 30 3]", sent)
	}
	for i := range maxPolicyIDs + 10 {
		first.sent(fmt.Sprint(i), now)
	}
	if len(first.last) > maxPolicyIDs || len(first.order) > maxPolicyIDs {
		t.Fatalf("policy remembers %d IDs, bound %d", len(first.last), maxPolicyIDs)
	}
}

// TestTeamsAndMattermostPost sends through the runner to receivers that
// check each incoming webhook's documented shape: Mattermost's "text",
// Teams' message with one Adaptive Card attachment.
func TestTeamsAndMattermostPost(t *testing.T) {
	checks := map[string]func(body []byte) error{
		TypeMattermost: func(body []byte) error {
			var p struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(body, &p); err != nil || p.Text == "" {
				return fmt.Errorf("no text: %v", err)
			}
			return nil
		},
		TypeTeams: func(body []byte) error {
			var p struct {
				Type        string `json:"type"`
				Attachments []struct {
					ContentType string         `json:"contentType"`
					Content     map[string]any `json:"content"`
				} `json:"attachments"`
			}
			if err := json.Unmarshal(body, &p); err != nil || p.Type != "message" || len(p.Attachments) != 1 ||
				p.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
				p.Attachments[0].Content["type"] != "AdaptiveCard" {
				return fmt.Errorf("not a message with one Adaptive Card: %v", err)
			}
			return nil
		},
	}
	for kind, check := range checks {
		t.Run(kind, func(t *testing.T) {
			rc := newReceiver(t, func(r *http.Request, body []byte) error { return check(body) })
			st := openStore(t)
			start(t, st, fmt.Sprintf(`
sinks:
- name: chat
  type: %s
  startAt: beginning
  chat: {url: "%s/hooks/xyz", revisions: first}
`, kind, rc.srv.URL), Options{})
			a := gen(0, 1)[0]
			insert(t, st, []alert.Alert{a})
			eventually(t, 10*time.Second, "one message", func() bool { return rc.count() == 1 })
			insert(t, st, []alert.Alert{storetest.Update(a, time.Second)})
			time.Sleep(300 * time.Millisecond)
			if rc.count() != 1 {
				t.Errorf("revisions: first posted the second revision too (%d messages)", rc.count())
			}
		})
	}
}
