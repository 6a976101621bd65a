package config

import (
	"time"

	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/berthhq/berth/internal/berth"
)

// Limits Validate enforces.
const (
	// MaxSlots is EMR's limit on StepConcurrencyLevel; local pools keep it
	// so that a pool can move between providers unchanged.
	MaxSlots = 256
	// MaxPoolClusters caps max_clusters, to catch a typo before it costs.
	MaxPoolClusters = 1000
	// MaxTagKey and MaxTagValue are EC2's tag limits.
	MaxTagKey   = 128
	MaxTagValue = 256
)

var poolName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// FieldError is one mistake in a configuration. It wraps berth.ErrInvalid.
type FieldError struct {
	// Pool is how the message names the pool at fault — `pool "small"`, or
	// `pool[3]` when it has no name — and empty for top-level fields.
	Pool string
	// Field is the field's path as written in the file, e.g. max_clusters,
	// emr.instance_groups[1].market or emr.tags["team"]; empty when a pool
	// (or the file) as a whole is at fault.
	Field string
	Msg   string
	// Line is the line of the file the mistake is on, for those found
	// while decoding (an unknown field, a value that does not fit); zero
	// for those Validate finds.
	Line int
}

func (e *FieldError) Error() string {
	var b strings.Builder
	for _, s := range []string{e.Pool, e.Field} {
		if s != "" {
			b.WriteString(s + ": ")
		}
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

func (e *FieldError) Unwrap() error { return berth.ErrInvalid }

// problems collects the FieldErrors of one part of a configuration, with
// field paths relative to that part.
type problems []*FieldError

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// addAll adds qs with their fields under prefix.
func (ps *problems) addAll(prefix string, qs problems) {
	for _, q := range qs {
		*ps = append(*ps, &FieldError{Field: prefix + q.Field, Msg: q.Msg})
	}
}

// Validate checks every field and returns every mistake it finds, joined,
// each a *FieldError naming its pool and field; nil when there is none. It
// expects the defaults to have been filled in, as Parse does.
func (c *Config) Validate() error {
	fes := c.fieldErrors()
	errs := make([]error, len(fes))
	for i, e := range fes {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func (c *Config) fieldErrors() []*FieldError {
	var ps problems
	c.validateServer(&ps)
	errs := []*FieldError(ps)
	if len(c.Pools) == 0 {
		errs = append(errs, &FieldError{Field: "pools", Msg: "at least one pool is required"})
	}
	seen := make(map[string]int, len(c.Pools))
	for i, p := range c.Pools {
		where := poolWhere(i, p.Name)
		for _, q := range p.validate() {
			q.Pool = where
			errs = append(errs, q)
		}
		if p.Name == "" {
			continue
		}
		if j, ok := seen[p.Name]; ok {
			errs = append(errs, &FieldError{Field: "pools", Msg: fmt.Sprintf("duplicate name %q (pool[%d] and pool[%d])", p.Name, j, i)})
			continue
		}
		seen[p.Name] = i
	}
	return errs
}

func (c *Config) validateServer(ps *problems) {
	if err := checkListen(c.Listen); err != nil {
		ps.add("listen", "must be host:port, e.g. %s: %v", DefaultListen, err)
	}
	scheme, rest, ok := strings.Cut(c.Store, "://")
	switch {
	case !ok:
		ps.add("store", "must be sqlite://PATH or postgres://..., not %q", c.Store)
	case scheme == StoreSQLite:
		if rest == "" {
			ps.add("store", "sqlite:// needs a file path, e.g. %s", DefaultStore)
		}
	case scheme == StorePostgres || scheme == "postgresql":
		if u, err := url.Parse(c.Store); err != nil || u.Host == "" {
			ps.add("store", "not a postgres URL (postgres://user@host/db)")
		}
	default:
		ps.add("store", "unknown scheme %q: use sqlite:// or postgres://", scheme)
	}
	if !validToken(c.Token) {
		ps.add("token", "may hold only letters, digits and -._~+/ (then trailing =), as a bearer token must")
	}
	if _, ok := logLevels[c.LogLevel]; !ok {
		ps.add("log_level", "must be debug, info, warn or error, not %q", c.LogLevel)
	}
}

func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number 0..65535", port)
	}
	return nil
}

// validToken reports whether t is empty or an RFC 6750 bearer token
// (token68): letters, digits and -._~+/, then optional = padding.
func validToken(t string) bool {
	if t == "" {
		return true
	}
	body := strings.TrimRight(t, "=")
	return body != "" && !strings.ContainsFunc(body, func(r rune) bool {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
			return false
		}
		return !strings.ContainsRune("-._~+/", r)
	})
}

func (p Pool) validate() problems {
	var ps problems
	switch {
	case p.Name == "":
		ps.add("name", "required")
	case !poolName.MatchString(p.Name):
		ps.add("name", "must be 1 to 63 of a-z, 0-9, - and _, starting with a letter or digit")
	}
	switch p.Provider {
	case ProviderLocal, ProviderEMR, ProviderSim:
	case "":
		ps.add("provider", "required: %q, %q or %q", ProviderLocal, ProviderEMR, ProviderSim)
	default:
		ps.add("provider", "must be %q, %q or %q, not %q", ProviderLocal, ProviderEMR, ProviderSim, p.Provider)
	}
	if p.Slots < 1 || p.Slots > MaxSlots {
		ps.add("slots", "must be 1..%d (EMR StepConcurrencyLevel), not %d", MaxSlots, p.Slots)
	}
	if p.MinClusters < 0 {
		ps.add("min_clusters", "must be ≥ 0")
	}
	switch {
	case p.MaxClusters < 1 || p.MaxClusters > MaxPoolClusters:
		ps.add("max_clusters", "must be 1..%d, not %d", MaxPoolClusters, p.MaxClusters)
	case p.MaxClusters < p.MinClusters:
		ps.add("max_clusters", "must be ≥ min_clusters (%d)", p.MinClusters)
	}
	if p.IdleTimeout < 0 && !p.IdleTimeout.Auto() {
		ps.add("idle_timeout", "must be ≥ 0")
	}
	if p.BootTimeout <= 0 {
		ps.add("boot_timeout", "must be > 0: a cluster needs time to boot")
	}
	if p.MaxLifetime < 0 {
		ps.add("max_lifetime", "must be ≥ 0 (0: no limit)")
	}
	if p.PricePerHour < 0 || math.IsNaN(p.PricePerHour) || math.IsInf(p.PricePerHour, 0) {
		ps.add("price_per_hour", "must be a number ≥ 0")
	}
	if f := p.Fallback; f != nil {
		if f.AfterFailures < 1 {
			ps.add("fallback.after_failures", "must be ≥ 1")
		}
		if f.For <= 0 {
			ps.add("fallback.for", "must be > 0")
		}
	}
	switch p.Provider {
	case ProviderLocal:
		p.validateLocal(&ps)
	case ProviderEMR:
		p.validateEMR(&ps)
	}
	p.validateSim(&ps)
	return ps
}

func (p Pool) validateLocal(ps *problems) {
	if p.EMR != nil {
		ps.add("emr", "only for emr pools")
	}
	if p.Local == nil {
		ps.add("local", "required for local pools")
	} else {
		ps.addAll("local.", p.Local.validate(p.BootTimeout))
	}
	if p.Fallback == nil {
		return
	}
	if p.Fallback.EMR != nil {
		ps.add("fallback.emr", "only for emr pools")
	}
	if p.Fallback.Local == nil {
		ps.add("fallback.local", "required: the spec a local pool falls back to")
		return
	}
	ps.addAll("fallback.local.", p.FallbackLocal().validate(p.BootTimeout))
}

func (l *LocalSpec) validate(bootTimeout Duration) problems {
	var ps problems
	switch {
	case l.BootTime < 0:
		ps.add("boot_time", "must be ≥ 0")
	case bootTimeout > 0 && l.BootTime >= bootTimeout:
		ps.add("boot_time", "must be less than the pool's boot_timeout (%s), or every cluster is lost", bootTimeout)
	}
	if l.Dir == "" {
		ps.add("dir", "required")
	}
	if l.PollInterval < 0 || l.PollInterval > Duration(time.Minute) {
		ps.add("poll_interval", "must be between 0 (the default) and 1m")
	}
	return ps
}

func (p Pool) validateEMR(ps *problems) {
	if p.Local != nil {
		ps.add("local", "only for local pools")
	}
	var primary problems
	if p.EMR == nil {
		ps.add("emr", "required for emr pools")
	} else {
		primary = p.EMR.validate()
		ps.addAll("emr.", primary)
	}
	if p.Fallback == nil {
		return
	}
	if p.Fallback.Local != nil {
		ps.add("fallback.local", "only for local pools")
	}
	fb := p.Fallback.EMR
	if fb == nil {
		ps.add("fallback.emr", "required: the spec an emr pool falls back to")
		return
	}
	if len(fb.InstanceGroups) > 0 && len(fb.InstanceFleets) > 0 {
		ps.add("fallback.emr.instance_groups", "give instance_groups or instance_fleets, not both")
		return
	}
	// A pool's clusters are watched through one client: a fallback cluster
	// in another region would be one Berth could not find again.
	if fb.Region != "" && p.EMR != nil && fb.Region != p.EMR.Region {
		ps.add("fallback.emr.region", "must be the pool's region, %q: a pool's clusters live in one region", p.EMR.Region)
	}
	if fb.Endpoint != "" && p.EMR != nil && fb.Endpoint != p.EMR.Endpoint {
		ps.add("fallback.emr.endpoint", "must be the pool's endpoint")
	}
	// The merged spec repeats whatever is wrong with the primary's fields
	// it took; those are reported once, under emr.
	reported := make(map[string]bool, len(primary))
	for _, q := range primary {
		reported[q.Field+"\x00"+q.Msg] = true
	}
	for _, q := range p.FallbackEMR().validate() {
		if !reported[q.Field+"\x00"+q.Msg] {
			ps.add("fallback.emr."+q.Field, "%s", q.Msg)
		}
	}
}

func (s *EMRSpec) validate() problems {
	var ps problems
	if s.Region == "" {
		ps.add("region", "required, e.g. us-east-1")
	}
	if s.Endpoint != "" {
		if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add("endpoint", "must be an http:// or https:// URL, not %q", s.Endpoint)
		}
	}
	if s.PollInterval != 0 && (s.PollInterval < Duration(100*time.Millisecond) || s.PollInterval > Duration(10*time.Minute)) {
		ps.add("poll_interval", "must be between 100ms and 10m, not %s", s.PollInterval)
	}
	switch {
	case s.ReleaseLabel == "":
		ps.add("release_label", "required, e.g. emr-7.5.0")
	case !strings.HasPrefix(s.ReleaseLabel, "emr-"):
		ps.add("release_label", "must look like emr-7.5.0, not %q", s.ReleaseLabel)
	}
	for i, a := range s.Applications {
		if strings.TrimSpace(a) == "" {
			ps.add(fmt.Sprintf("applications[%d]", i), "empty")
		}
	}
	if s.ServiceRole == "" {
		ps.add("service_role", "required")
	}
	if s.JobFlowRole == "" {
		ps.add("job_flow_role", "required")
	}
	if s.LogURI != "" && !strings.HasPrefix(s.LogURI, "s3://") {
		ps.add("log_uri", "must be an s3:// location, not %q", s.LogURI)
	}
	switch {
	case len(s.InstanceGroups) > 0 && len(s.InstanceFleets) > 0:
		ps.add("instance_groups", "give instance_groups or instance_fleets, not both")
	case len(s.InstanceGroups) > 0:
		validateGroups(&ps, s.InstanceGroups)
	case len(s.InstanceFleets) > 0:
		validateFleets(&ps, s.InstanceFleets)
	default:
		ps.add("instance_groups", "required (or instance_fleets)")
	}
	for i, b := range s.BootstrapActions {
		f := fmt.Sprintf("bootstrap_actions[%d]", i)
		if b.Name == "" {
			ps.add(f+".name", "required")
		}
		if b.Path == "" {
			ps.add(f+".path", "required, e.g. s3://bucket/bootstrap.sh")
		}
	}
	validateConfigurations(&ps, "configurations", s.Configurations, 0)
	switch {
	case s.SubnetID != "" && len(s.SubnetIDs) > 0:
		ps.add("subnet_ids", "give subnet_id or subnet_ids, not both")
	case len(s.SubnetIDs) > 0 && len(s.InstanceFleets) == 0:
		ps.add("subnet_ids", "only with instance_fleets (EMR chooses among subnets for fleets); use subnet_id with instance_groups")
	}
	for i, id := range s.SubnetIDs {
		if !strings.HasPrefix(id, "subnet-") {
			ps.add(fmt.Sprintf("subnet_ids[%d]", i), "must look like subnet-0abc, not %q", id)
		}
	}
	for _, sg := range []struct{ field, id string }{{"master_security_group", s.MasterSecurityGroup}, {"slave_security_group", s.SlaveSecurityGroup}} {
		if sg.id != "" && !strings.HasPrefix(sg.id, "sg-") {
			ps.add(sg.field, "must look like sg-0abc, not %q", sg.id)
		}
	}
	for i, id := range s.AdditionalSecurityGroups {
		if !strings.HasPrefix(id, "sg-") {
			ps.add(fmt.Sprintf("additional_security_groups[%d]", i), "must look like sg-0abc, not %q", id)
		}
	}
	if s.CustomAmiID != "" && !strings.HasPrefix(s.CustomAmiID, "ami-") {
		ps.add("custom_ami_id", "must look like ami-0abc, not %q", s.CustomAmiID)
	}
	if v := s.EBSRootVolumeSize; v != 0 && (v < MinEBSRootVolume || v > MaxEBSRootVolume) {
		ps.add("ebs_root_volume_size", "must be %d..%d GiB (or 0 for EMR's default), not %d", MinEBSRootVolume, MaxEBSRootVolume, v)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Tags)) {
		switch v := s.Tags[k]; {
		case k == "" || len(k) > MaxTagKey:
			ps.add("tags", "key %q must be 1..%d characters", k, MaxTagKey)
		case len(v) > MaxTagValue:
			ps.add("tags", "value of %q longer than %d characters", k, MaxTagValue)
		}
	}
	return ps
}

func validRole(r string) bool { return r == RoleMaster || r == RoleCore || r == RoleTask }

func validateGroups(ps *problems, groups []InstanceGroup) {
	count := map[string]int{}
	for i, g := range groups {
		f := fmt.Sprintf("instance_groups[%d]", i)
		if !validRole(g.Role) {
			ps.add(f+".role", "must be MASTER, CORE or TASK, not %q", g.Role)
		}
		count[g.Role]++
		if g.InstanceType == "" {
			ps.add(f+".instance_type", "required, e.g. m5.xlarge")
		}
		switch {
		case g.Count < 1:
			ps.add(f+".count", "must be ≥ 1")
		case g.Role == RoleMaster && g.Count != 1:
			ps.add(f+".count", "a MASTER group must have count 1")
		}
		switch g.Market {
		case MarketOnDemand:
			if g.BidPrice != "" {
				ps.add(f+".bid_price", "only for SPOT groups")
			}
		case MarketSpot:
			if v, err := strconv.ParseFloat(g.BidPrice, 64); g.BidPrice != "" && (err != nil || !(v > 0)) {
				ps.add(f+".bid_price", "must be a price in USD above 0, e.g. \"0.50\", not %q", g.BidPrice)
			}
		default:
			ps.add(f+".market", "must be ON_DEMAND or SPOT, not %q", g.Market)
		}
	}
	if n := count[RoleMaster]; n != 1 {
		ps.add("instance_groups", "exactly one MASTER group is required, not %d", n)
	}
	if n := count[RoleCore]; n > 1 {
		ps.add("instance_groups", "at most one CORE group, not %d", n)
	}
}

func validateFleets(ps *problems, fleets []InstanceFleet) {
	count := map[string]int{}
	for i, fl := range fleets {
		f := fmt.Sprintf("instance_fleets[%d]", i)
		if !validRole(fl.Role) {
			ps.add(f+".role", "must be MASTER, CORE or TASK, not %q", fl.Role)
		}
		count[fl.Role]++
		switch total := fl.TargetOnDemandCapacity + fl.TargetSpotCapacity; {
		case fl.TargetOnDemandCapacity < 0 || fl.TargetSpotCapacity < 0:
			ps.add(f+".target_on_demand_capacity", "target capacities must be ≥ 0")
		case fl.Role == RoleMaster && total != 1:
			ps.add(f+".target_on_demand_capacity", "a MASTER fleet's target capacities must add up to 1, not %d", total)
		case total < 1:
			ps.add(f+".target_on_demand_capacity", "target capacities must add up to at least 1")
		}
		if len(fl.InstanceTypes) == 0 {
			ps.add(f+".instance_types", "at least one instance type is required")
		}
		if v := fl.OnDemandAllocationStrategy; v != "" && !slices.Contains(OnDemandAllocationStrategies, v) {
			ps.add(f+".on_demand_allocation_strategy", "must be one of %s, not %q", strings.Join(OnDemandAllocationStrategies, ", "), v)
		}
		if v := fl.SpotAllocationStrategy; v != "" && !slices.Contains(SpotAllocationStrategies, v) {
			ps.add(f+".spot_allocation_strategy", "must be one of %s, not %q", strings.Join(SpotAllocationStrategies, ", "), v)
		}
		switch {
		case fl.SpotTimeoutMinutes == 0 && fl.SpotTimeoutAction != "":
			ps.add(f+".spot_timeout_minutes", "required with spot_timeout_action")
		case fl.SpotTimeoutMinutes != 0 && (fl.SpotTimeoutMinutes < 5 || fl.SpotTimeoutMinutes > 1440):
			ps.add(f+".spot_timeout_minutes", "must be 5..1440, not %d", fl.SpotTimeoutMinutes)
		case fl.SpotTimeoutMinutes != 0 && fl.SpotTimeoutAction != SpotTimeoutSwitch && fl.SpotTimeoutAction != SpotTimeoutTerminate:
			ps.add(f+".spot_timeout_action", "must be %s or %s, not %q", SpotTimeoutSwitch, SpotTimeoutTerminate, fl.SpotTimeoutAction)
		}
		for j, t := range fl.InstanceTypes {
			if t == "" {
				ps.add(fmt.Sprintf("%s.instance_types[%d]", f, j), "empty")
			}
		}
	}
	if n := count[RoleMaster]; n != 1 {
		ps.add("instance_fleets", "exactly one MASTER fleet is required, not %d", n)
	}
	for _, r := range []string{RoleCore, RoleTask} {
		if n := count[r]; n > 1 {
			ps.add("instance_fleets", "at most one %s fleet, not %d", r, n)
		}
	}
}

// maxConfigurationDepth is deeper than any EMR classification nests.
const maxConfigurationDepth = 8

func validateConfigurations(ps *problems, field string, cs []Configuration, depth int) {
	if len(cs) > 0 && depth >= maxConfigurationDepth {
		ps.add(field, "nested more than %d deep", maxConfigurationDepth)
		return
	}
	for i, c := range cs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if c.Classification == "" {
			ps.add(f+".classification", "required, e.g. spark-defaults")
		}
		validateConfigurations(ps, f+".configurations", c.Configurations, depth+1)
	}
}
