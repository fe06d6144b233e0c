// Package sink delivers stored alerts to destinations other than the
// collector's gRPC stream: a generic JSON webhook (optionally HMAC-signed),
// Slack, Teams and Mattermost incoming webhooks, Splunk HEC, RFC 5424
// syslog over TCP or TLS (CEF or JSON), and OTLP logs over gRPC.
//
// It is the stage after the store: each sink reads revisions by sequence
// (store ReadAfter) after its own acknowledged cursor, which it keeps in the
// store (store.SinkCursors) and moves only after the destination
// acknowledged, so delivery is at least once across restarts. A lease row
// makes one collector replica at a time deliver each sink. Failures are
// retried with bounded exponential backoff; what a destination refuses for
// good is dead-lettered (logged and counted). Everything written into a
// destination's format is escaped for that format and bounded in size:
// alert text comes from the watched, possibly hostile, pods.
package sink
