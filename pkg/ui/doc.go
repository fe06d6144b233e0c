// Package ui is the collector's web UI: server-rendered pages over the
// alerts a collector stores, for people who would rather look than read.
//
// It reads through Source (the store's List, Get, rollups and stream read)
// and a wake-up from the collector's ingest (the same signal its
// StreamAlerts subscribers, SIEMs, wait on), and hands the browser HTML with
// SVG charts drawn here, one stylesheet and one small script, all embedded
// (no CDN, no build step). New alerts reach open pages as Server-Sent
// Events read from the store after a cursor, like a SIEM stream.
//
// Access is the gRPC API's: a sign-in page takes a bearer token that the
// Authenticator accepts (TokenReview) and keeps it in an HttpOnly, Secure,
// SameSite=Strict cookie that expires with the token; every request checks
// it again (answers are cached briefly by auth), and a person sees only the
// namespaces the Authorizer (SubjectAccessReview) lets them list. A local
// standalone collector has no API server: it prints a per-run access key
// instead. There is no default password.
//
// Every input is bounded (request and query sizes, page sizes, live streams
// per identity and in all, requests per address) and every refusal is
// counted in errnowatch_ui_refused_total.
package ui
