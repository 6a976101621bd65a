// Package berth holds Berth's domain: jobs, their steps and attempts,
// clusters, pools, the states each may be in and the moves allowed between
// them, and the sentinel errors every layer speaks.
//
// It imports only the standard library so that every other package — the
// pure scheduler, the store drivers, the providers, the API — can depend on
// it without depending on each other.
package berth
