package service

import (
	"context"
	"time"

	"github.com/berthhq/berth/internal/provider"
)

// strayEvery is how often the clusters of a pool whose provider lists them
// are compared with Berth's records. A stray costs money, not jobs: a
// few minutes is soon enough, and a scan costs an account-wide listing.
const strayEvery = 5 * time.Minute

// strayScan is where a pool's stray scans are.
type strayScan struct {
	next     time.Time
	scanning bool
	found    []provider.Listed
}

// strayList is a scan's answer, for the loop.
type strayList struct {
	pool   string
	listed []provider.Listed
	err    error
}

// scanStrays starts the scans that are due, one per pool at a time,
// through the executor: the first right after the service starts, with
// its clusters restored, and then every strayEvery.
func (l *loop) scanStrays(now time.Time) {
	for _, name := range l.s.poolNames {
		p := l.s.pools[name]
		lister, ok := p.prov.(provider.Lister)
		if !ok {
			continue
		}
		sc := l.strays[name]
		if sc == nil {
			sc = &strayScan{}
			l.strays[name] = sc
		}
		if sc.scanning || now.Before(sc.next) {
			continue
		}
		sc.scanning, sc.next = true, now.Add(strayEvery)
		ctx := l.s.ctx
		if !l.s.spawn(func() {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			listed, err := lister.ListClusters(cctx)
			l.s.post(strayList{pool: name, listed: listed, err: err})
		}) {
			sc.scanning = false
		}
	}
}

// applyStrays takes a scan's answer: the clusters Berth does not know are
// reported, and terminated if the pool says so.
func (l *loop) applyStrays(in strayList) {
	sc := l.strays[in.pool]
	if sc == nil {
		return
	}
	sc.scanning = false
	if in.err != nil {
		l.s.log.Warn("could not list the pool's clusters to look for strays", "pool", in.pool, "err", in.err)
		return
	}
	sc.found = l.st.Strays(in.listed)
	p := l.s.pools[in.pool]
	for _, c := range sc.found {
		if !p.terminateStrays {
			l.s.log.Warn("stray cluster: started by this installation, unknown to Berth, left running (terminate_strays is off)",
				"pool", in.pool, "provider_id", c.ID, "cluster_id", c.ClusterID, "since", c.Since)
			continue
		}
		l.s.log.Warn("terminating stray cluster: started by this installation, unknown to Berth",
			"pool", in.pool, "provider_id", c.ID, "cluster_id", c.ClusterID, "since", c.Since)
		ctx, prov, id := l.s.ctx, p.prov, c.ID
		l.s.spawn(func() {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			if err := prov.TerminateCluster(cctx, id); err != nil {
				l.s.log.Warn("could not terminate stray cluster; trying again at the next scan", "pool", in.pool, "provider_id", id, "err", err)
			}
		})
	}
}
