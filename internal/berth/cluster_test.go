package berth

import "testing"

func TestClusterFreeSlots(t *testing.T) {
	for _, c := range []struct {
		state   ClusterState
		running int
		want    int
	}{
		{ClusterReady, 0, 4},
		{ClusterReady, 3, 1},
		{ClusterReady, 6, 0}, // more than its slots: none, not fewer
		{ClusterDraining, 0, 0},
		{ClusterStarting, 0, 0},
	} {
		cl := Cluster{State: c.state, Slots: 4}
		if got := cl.FreeSlots(c.running); got != c.want {
			t.Errorf("%s cluster of 4 slots, %d running: %d free, want %d", c.state, c.running, got, c.want)
		}
	}
}
