package config

import "go.yaml.in/yaml/v3"

// keySet holds the keys a YAML mapping gives a value (null is no value).
type keySet map[string]bool

// applyDefaults fills in every field the file left out. present[i] holds the
// keys pool i was written with; it matters for the fields whose zero is a
// value a user may mean (slots: 0 is an error to report, idle_timeout: 0s
// drains at once), which take their default only when absent. A pool with
// no entry in present (one built in code) treats zero as absent.
func (c *Config) applyDefaults(present []keySet) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Store == "" {
		c.Store = DefaultStore
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	for i := range c.Pools {
		p := &c.Pools[i]
		absent := func(key string, zero bool) bool {
			if i < len(present) {
				return !present[i][key]
			}
			return zero
		}
		if absent("slots", p.Slots == 0) {
			p.Slots = DefaultSlots
		}
		if absent("min_clusters", p.MinClusters == 0) {
			p.MinClusters = DefaultMinClusters
		}
		if absent("max_clusters", p.MaxClusters == 0) {
			p.MaxClusters = max(DefaultMaxClusters, p.MinClusters)
		}
		if absent("idle_timeout", p.IdleTimeout == 0) {
			p.IdleTimeout = IdleTimeout(DefaultIdleTimeout)
		}
		if absent("boot_timeout", p.BootTimeout == 0) {
			switch p.Provider {
			case ProviderEMR:
				p.BootTimeout = Duration(DefaultBootTimeoutEMR)
			case ProviderLocal:
				p.BootTimeout = Duration(DefaultBootTimeoutLocal)
			case ProviderSim:
				p.BootTimeout = Duration(DefaultBootTimeoutSim)
			}
		}
		if absent("max_lifetime", p.MaxLifetime == 0) {
			p.MaxLifetime = Duration(DefaultMaxLifetime)
		}
		if absent("price_per_hour", p.PricePerHour == 0) {
			p.PricePerHour = DefaultPricePerHour
		}
		if p.Provider == ProviderLocal && p.Local == nil {
			p.Local = &LocalSpec{BootTime: Duration(DefaultLocalBootTime)}
		}
		p.applySimDefaults()
		if p.Local != nil && p.Local.Dir == "" {
			p.Local.Dir = DefaultLocalDir
		}
		if p.EMR != nil {
			if p.EMR.ServiceRole == "" {
				p.EMR.ServiceRole = DefaultEMRServiceRole
			}
			if p.EMR.JobFlowRole == "" {
				p.EMR.JobFlowRole = DefaultEMRJobFlowRole
			}
			defaultMarkets(p.EMR.InstanceGroups)
		}
		// The fallback's other empty fields stay empty: they mean "the
		// primary's", which a default here would hide.
		if p.Fallback != nil && p.Fallback.EMR != nil {
			defaultMarkets(p.Fallback.EMR.InstanceGroups)
		}
	}
}

func defaultMarkets(groups []InstanceGroup) {
	for i := range groups {
		if groups[i].Market == "" {
			groups[i].Market = DefaultMarket
		}
	}
}

// presentPoolKeys lists, for each pool of a parsed document, the keys it
// was written with, following aliases and merge keys (<<: *base).
func presentPoolKeys(doc *yaml.Node) []keySet {
	pools := poolsNode(doc)
	if pools == nil {
		return nil
	}
	out := make([]keySet, len(pools.Content))
	for i, p := range pools.Content {
		out[i] = keySet{}
		collectKeys(p, out[i], 0)
	}
	return out
}

func collectKeys(n *yaml.Node, into keySet, depth int) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode || depth > 32 {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					collectKeys(m, into, depth+1)
				}
			} else {
				collectKeys(v, into, depth+1)
			}
			continue
		}
		if v.ShortTag() != "!!null" {
			into[k.Value] = true
		}
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}
