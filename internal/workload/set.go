package workload

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/config"
)

// setFields are the keys ApplySet takes, as a configuration file writes
// them, each with the field of a pool it sets.
var setFields = map[string]func(p *config.Pool) any{
	"slots":                 func(p *config.Pool) any { return &p.Slots },
	"min_clusters":          func(p *config.Pool) any { return &p.MinClusters },
	"max_clusters":          func(p *config.Pool) any { return &p.MaxClusters },
	"idle_timeout":          func(p *config.Pool) any { return &p.IdleTimeout },
	"boot_timeout":          func(p *config.Pool) any { return &p.BootTimeout },
	"max_lifetime":          func(p *config.Pool) any { return &p.MaxLifetime },
	"price_per_hour":        func(p *config.Pool) any { return &p.PricePerHour },
	"boot_time":             func(p *config.Pool) any { return &p.Sim.BootTime },
	"terminate_time":        func(p *config.Pool) any { return &p.Sim.TerminateTime },
	"loss_per_cluster_hour": func(p *config.Pool) any { return &p.Sim.LossPerClusterHour },
}

// ApplySet changes the named pool of w as set says: "key=value" items,
// comma-separated, such as "max_clusters=6,idle_timeout=5m". The keys are
// the pool's fields (slots, min_clusters, max_clusters, idle_timeout,
// boot_timeout, max_lifetime, price_per_hour) and its sim block's
// (boot_time, terminate_time, loss_per_cluster_hour). The changed pool is
// validated as a configuration's is. Its errors name the pool and the key
// and wrap berth.ErrInvalid; on an error w is unchanged.
func ApplySet(w *Workload, pool, set string) error {
	i := slices.IndexFunc(w.Pools, func(p config.Pool) bool { return p.Name == pool })
	if i < 0 {
		names := make([]string, len(w.Pools))
		for k, p := range w.Pools {
			names[k] = p.Name
		}
		return invalid(fmt.Errorf("set: no pool %q (the pools: %s)", pool, strings.Join(names, ", ")))
	}
	if strings.TrimSpace(set) == "" {
		return invalid(fmt.Errorf("pool %q: set: nothing to set: give key=value, e.g. max_clusters=6", pool))
	}
	p := w.Pools[i]
	// A copy of the sim spec: w's is not to change before the whole set
	// is known to be good.
	sim := config.SimSpec{}
	if p.Sim != nil {
		sim = *p.Sim
	}
	p.Sim = &sim
	seen := map[string]bool{}
	for item := range strings.SplitSeq(set, ",") {
		key, value, ok := strings.Cut(item, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		field, known := setFields[key]
		switch {
		case !ok:
			return invalid(fmt.Errorf("pool %q: set: %q is not key=value", pool, item))
		case !known:
			return invalid(fmt.Errorf("pool %q: set: unknown key %q (the keys: %s)", pool, key, strings.Join(slices.Sorted(maps.Keys(setFields)), ", ")))
		case seen[key]:
			return invalid(fmt.Errorf("pool %q: set: %s given twice", pool, key))
		}
		seen[key] = true
		if err := setValue(field(&p), value); err != nil {
			return invalid(fmt.Errorf("pool %q: %s: %w", pool, key, err))
		}
	}
	if err := validatePools([]config.Pool{p}); err != nil {
		return err
	}
	w.Pools[i] = p
	return nil
}

// setValue parses value into the field dst points to.
func setValue(dst any, value string) error {
	switch d := dst.(type) {
	case *int:
		n, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", value)
		}
		*d = n
	case *float64:
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", value)
		}
		*d = f
	case *config.Duration:
		v, err := time.ParseDuration(value)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 90s, 5m or 1h", value)
		}
		*d = config.Duration(v)
	case *config.IdleTimeout:
		if value == "auto" {
			*d = config.IdleAuto
			return nil
		}
		v, err := time.ParseDuration(value)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 90s, 5m or 1h, nor auto", value)
		}
		*d = config.IdleTimeout(v)
	default:
		panic(fmt.Sprintf("workload: set: no parser for %T", dst))
	}
	return nil
}
