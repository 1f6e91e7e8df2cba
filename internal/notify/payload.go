package notify

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// PayloadSchema and PayloadVersion name the generic webhook's payload
// (docs/notifications.md). A change that removes or retypes a field
// raises the version; new fields may appear within a version.
const (
	PayloadSchema  = "wildix-export/notification"
	PayloadVersion = 1
)

// Generic is the generic webhook's payload, version 1.
type Generic struct {
	Schema   string    `json:"schema"`
	Version  int       `json:"version"`
	ID       string    `json:"id"` // the same on every attempt of one delivery
	Kind     Kind      `json:"kind"`
	PBX      string    `json:"pbx"`
	At       time.Time `json:"at"`
	Title    string    `json:"title"`
	Text     string    `json:"text"`
	Failure  *Failure  `json:"failure,omitempty"`
	Recovery *Recovery `json:"recovery,omitempty"`
	Summary  *Summary  `json:"summary,omitempty"`
}

// payload renders m for service s.
func payload(s Service, m *Message, id string) ([]byte, error) {
	title, text := m.Title(), strings.TrimRight(m.Text(), "\n")
	var v any
	switch s {
	case Slack:
		v = slackPayload(title, text)
	case Teams:
		v = teamsPayload(title, text)
	case Mattermost:
		v = map[string]string{"text": "#### " + title + "\n" + text}
	case GoogleChat:
		v = map[string]string{"text": "*" + title + "*\n" + text}
	default:
		v = Generic{Schema: PayloadSchema, Version: PayloadVersion, ID: id, Kind: m.Kind, PBX: m.PBX, At: m.At.UTC(),
			Title: title, Text: text, Failure: m.Failure, Recovery: m.Recovery, Summary: m.Summary}
	}
	return json.Marshal(v)
}

// Slack's Block Kit limits: a header's text 150 characters, a section's
// 3000 (docs.slack.dev, reference/block-kit/blocks).
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
)

func slackPayload(title, text string) any {
	type textObj struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type block struct {
		Type string  `json:"type"`
		Text textObj `json:"text"`
	}
	return struct {
		Text   string  `json:"text"` // the notification's and a fallback's text
		Blocks []block `json:"blocks"`
	}{
		Text: slackEscape(title),
		Blocks: []block{
			{Type: "header", Text: textObj{Type: "plain_text", Text: cut(title, slackHeaderMax)}},
			{Type: "section", Text: textObj{Type: "mrkdwn", Text: cut(slackEscape(text), slackSectionMax)}},
		},
	}
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// teamsPayload is the message a Teams workflow ("Post to a channel when a
// webhook request is received") expects: an Adaptive Card as an
// attachment. Each line is its own TextBlock, as a TextBlock's markdown
// joins single line breaks.
func teamsPayload(title, text string) any {
	type textBlock struct {
		Type   string `json:"type"`
		Text   string `json:"text"`
		Wrap   bool   `json:"wrap"`
		Weight string `json:"weight,omitempty"`
		Size   string `json:"size,omitempty"`
	}
	body := []textBlock{{Type: "TextBlock", Text: title, Wrap: true, Weight: "Bolder", Size: "Medium"}}
	for line := range strings.SplitSeq(text, "\n") {
		body = append(body, textBlock{Type: "TextBlock", Text: line, Wrap: true})
	}
	type card struct {
		Schema  string      `json:"$schema"`
		Type    string      `json:"type"`
		Version string      `json:"version"`
		Body    []textBlock `json:"body"`
	}
	type attachment struct {
		ContentType string  `json:"contentType"`
		ContentURL  *string `json:"contentUrl"`
		Content     card    `json:"content"`
	}
	return struct {
		Type        string       `json:"type"`
		Attachments []attachment `json:"attachments"`
	}{
		Type: "message",
		Attachments: []attachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content: card{Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard",
				Version: "1.4", Body: body},
		}},
	}
}

// cut shortens s to at most n characters, marking the cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
