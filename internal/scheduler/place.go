package scheduler

import (
	"container/heap"
	"fmt"

	"github.com/berthhq/berth/internal/berth"
)

// failLostAffinity fails the affinity_required jobs whose cluster will
// never take them: it is gone, belongs to another pool, or is on its way
// out (draining, terminating, or lost or recycled earlier in this pass).
// Only the snapshot's affinity counts here; a key established in this pass
// always names a ready cluster.
func (p *pass) failLostAffinity() {
	for i := range p.jobs {
		j := &p.jobs[i]
		if !j.AffinityRequired || j.Affinity == "" {
			continue
		}
		id, ok := p.affinity[j.Affinity]
		if !ok {
			continue
		}
		why := p.whyNever(id)
		if why == "" {
			continue
		}
		j.outcome = failed
		p.plan.Fail = append(p.plan.Fail, Fail{
			JobID:   j.ID,
			Reason:  berth.ReasonAffinityLost,
			Message: fmt.Sprintf("affinity %q requires cluster %s, which %s", j.Affinity, id, why),
		})
	}
}

// whyNever says why the cluster id can never take a job of this pool, or
// "" when it still can (it is ready, or starting).
func (p *pass) whyNever(id string) string {
	c := p.byID[id]
	switch {
	case c == nil:
		return "no longer exists"
	case c.Pool != p.pool.Pool.Name:
		return fmt.Sprintf("belongs to pool %s", c.Pool)
	case c.state == berth.ClusterReady || c.state == berth.ClusterStarting:
		return ""
	case c.state == berth.ClusterLost || c.state == berth.ClusterTerminated:
		return fmt.Sprintf("was %s", c.state)
	default:
		return fmt.Sprintf("is %s", c.state)
	}
}

// place walks the eligible jobs in order and gives each a slot: its
// affinity cluster when that is ready with room, else the busiest ready
// cluster with room. What is left unplaced, apart from jobs waiting for
// their required cluster, is the demand scaleUp answers.
func (p *pass) place() {
	p.room = p.room[:0]
	for _, c := range p.clusters {
		if c.state == berth.ClusterReady && c.hasRoom() {
			heap.Push(&p.room, c)
		}
	}
	for i := range p.jobs {
		j := &p.jobs[i]
		if j.outcome != unplaced {
			continue
		}
		c, wait := p.choose(j)
		switch {
		case c != nil:
			p.assign(j, c)
		case wait:
			j.outcome = waiting
		default:
			p.demand++
		}
	}
}

// choose returns the cluster for j, or nil and whether j waits for its
// required cluster rather than counting as demand.
func (p *pass) choose(j *job) (c *cluster, wait bool) {
	if j.Affinity != "" {
		id, ok := p.affinity[j.Affinity]
		if !ok {
			id, ok = p.established[j.Affinity]
		}
		if ok {
			if home := p.byID[id]; home != nil && home.Pool == p.pool.Pool.Name &&
				home.state == berth.ClusterReady && home.hasRoom() {
				return home, false
			}
			if j.AffinityRequired {
				return nil, true
			}
		}
	}
	return p.room.busiest(), false
}

func (p *pass) assign(j *job, c *cluster) {
	c.running++
	p.room.changed(c)
	j.outcome = placed
	p.plan.Place = append(p.plan.Place, Placement{JobID: j.ID, ClusterID: c.ID})
	if j.Affinity == "" {
		return
	}
	if _, ok := p.affinity[j.Affinity]; ok {
		return
	}
	if _, ok := p.established[j.Affinity]; ok {
		return
	}
	if p.established == nil {
		p.established = map[string]string{}
	}
	p.established[j.Affinity] = c.ID
}

// roomHeap holds a pool's ready clusters with a free slot, busiest first
// (most running, then oldest, then ID), so the packing choice costs
// O(log clusters) per job rather than a scan.
type roomHeap []*cluster

func (h roomHeap) Len() int { return len(h) }

func (h roomHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.running != b.running {
		return a.running > b.running
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

func (h roomHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex = i
	h[j].heapIndex = j
}

func (h *roomHeap) Push(x any) {
	c := x.(*cluster)
	c.heapIndex = len(*h)
	*h = append(*h, c)
}

func (h *roomHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.heapIndex = -1
	return c
}

func (h roomHeap) busiest() *cluster {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

// changed restores the heap after c took a job: c leaves it when full.
func (h *roomHeap) changed(c *cluster) {
	if c.heapIndex < 0 {
		return
	}
	if c.hasRoom() {
		heap.Fix(h, c.heapIndex)
	} else {
		heap.Remove(h, c.heapIndex)
	}
}
