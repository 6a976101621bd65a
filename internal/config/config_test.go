package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

func dur(s string) Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return Duration(d)
}

func TestDefault(t *testing.T) {
	c := Default()
	want := &Config{
		Listen:   "127.0.0.1:8080",
		Store:    "sqlite://berth.db",
		LogLevel: "info",
		Pools: []Pool{{
			Name:         "default",
			Provider:     ProviderLocal,
			Slots:        4,
			MaxClusters:  4,
			IdleTimeout:  IdleTimeout(dur("30s")),
			BootTimeout:  dur("1m"),
			PricePerHour: 1.0,
			Local:        &LocalSpec{BootTime: dur("1s"), Dir: "berth-local", PollInterval: dur("200ms")},
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate(): %v", err)
	}
	if scheme, path := c.SplitStore(); scheme != StoreSQLite || path != "berth.db" {
		t.Errorf("SplitStore() = %q, %q; want sqlite, berth.db", scheme, path)
	}
	// Callers may change what they get without changing the next caller's.
	c.Pools[0].Local.Dir = "elsewhere"
	if d := Default().Pools[0].Local.Dir; d != DefaultLocalDir {
		t.Errorf("a second Default() sees the first one's change: dir %q", d)
	}
}

// TestDefaultExampleEMRPool keeps the commented EMR pool in default.yaml,
// which users copy, a pool that parses.
func TestDefaultExampleEMRPool(t *testing.T) {
	text := string(DefaultYAML())
	_, rest, ok := strings.Cut(text, "# --- example emr pool ---\n")
	example, _, ok2 := strings.Cut(rest, "# --- end ---")
	if !ok || !ok2 {
		t.Fatal("default.yaml lost its example emr pool markers")
	}
	var b strings.Builder
	b.WriteString(text)
	for line := range strings.Lines(example) {
		b.WriteString(strings.TrimPrefix(line, "#"))
	}
	c, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("default.yaml with its emr example uncommented: %v", err)
	}
	p, ok := c.Pool("spark-large")
	if !ok || p.Provider != ProviderEMR || p.Fallback == nil || len(p.EMR.InstanceGroups) != 2 {
		t.Fatalf("example emr pool parsed as %+v", p)
	}
}

func TestParseFull(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	master := InstanceGroup{Role: RoleMaster, InstanceType: "m5.xlarge", Count: 1, Market: MarketOnDemand}
	want := &Config{
		Listen:   "127.0.0.1:8080",
		Store:    "sqlite://berth.db",
		Token:    "s3cret-Token_1",
		LogLevel: "debug",
		Pools: []Pool{{
			Name:         "small",
			Provider:     ProviderLocal,
			Slots:        2,
			MaxClusters:  3,
			IdleTimeout:  IdleTimeout(dur("30s")),
			BootTimeout:  Duration(DefaultBootTimeoutLocal),
			PricePerHour: 1.0,
			Local:        &LocalSpec{BootTime: dur("2s"), Dir: DefaultLocalDir},
		}, {
			Name:         "spark-large",
			Provider:     ProviderEMR,
			Slots:        8,
			MaxClusters:  10,
			IdleTimeout:  IdleTimeout(dur("10m")),
			BootTimeout:  Duration(DefaultBootTimeoutEMR),
			MaxLifetime:  dur("12h"),
			PricePerHour: 12.5,
			EMR: &EMRSpec{
				Region:       "us-east-1",
				ReleaseLabel: "emr-7.5.0",
				Applications: []string{"Spark", "Hadoop"},
				ServiceRole:  "EMR_DefaultRole",
				JobFlowRole:  "EMR_EC2_DefaultRole",
				LogURI:       "s3://bucket/logs/",
				InstanceGroups: []InstanceGroup{
					master,
					{Role: RoleCore, InstanceType: "r5.2xlarge", Count: 4, Market: MarketSpot, BidPrice: "0.35"},
					{Role: RoleTask, InstanceType: "r5.2xlarge", Count: 2, Market: MarketOnDemand},
				},
				BootstrapActions: []BootstrapAction{{Name: "deps", Path: "s3://bucket/bootstrap.sh", Args: []string{"--fast", "2"}}},
				Configurations: []Configuration{
					{Classification: "spark-defaults", Properties: map[string]string{"spark.dynamicAllocation.enabled": "true"}},
					{Classification: "spark-env", Configurations: []Configuration{
						{Classification: "export", Properties: map[string]string{"PYSPARK_PYTHON": "/usr/bin/python3"}},
					}},
				},
				Tags:     map[string]string{"team": "data", "cost-center": "42"},
				SubnetID: "subnet-0abc",
				KeyName:  "ops",
			},
			Fallback: &Fallback{
				AfterFailures: 2,
				For:           dur("1h"),
				EMR: &EMRSpec{InstanceGroups: []InstanceGroup{
					master,
					{Role: RoleCore, InstanceType: "r5.2xlarge", Count: 4, Market: MarketOnDemand},
				}},
			},
		}, {
			Name:        "fleet",
			Provider:    ProviderEMR,
			Slots:       DefaultSlots,
			MaxClusters: DefaultMaxClusters,
			IdleTimeout: IdleTimeout(DefaultIdleTimeout),
			BootTimeout: dur("30m"),
			EMR: &EMRSpec{
				Region:       "eu-west-1",
				ReleaseLabel: "emr-7.5.0",
				ServiceRole:  DefaultEMRServiceRole,
				JobFlowRole:  DefaultEMRJobFlowRole,
				InstanceFleets: []InstanceFleet{
					{Role: RoleMaster, TargetOnDemandCapacity: 1, InstanceTypes: []string{"m5.xlarge"}},
					{Role: RoleCore, TargetSpotCapacity: 8, InstanceTypes: []string{"r5.2xlarge", "r5a.2xlarge", "r6i.2xlarge"}},
				},
			},
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("parsed\n%#v\nwant\n%#v", c, want)
	}
	if c.Level().String() != "DEBUG" {
		t.Errorf("Level() = %v, want DEBUG", c.Level())
	}
}

// TestParseDefaults checks that a field takes its default only when absent:
// a zero written in the file is the user's and is kept (or refused).
func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name string
		pool string
		want func(Pool) bool
	}{
		{"local defaults", "{name: a, provider: local}", func(p Pool) bool {
			return p.Slots == 1 && p.MinClusters == 0 && p.MaxClusters == 1 &&
				p.IdleTimeout == IdleTimeout(10*time.Minute) && p.BootTimeout == Duration(time.Minute) &&
				p.MaxLifetime == 0 && p.PricePerHour == 0 &&
				p.Local != nil && p.Local.Dir == "berth-local" && p.Local.BootTime == 0
		}},
		{"emr boot timeout", "{name: a, provider: emr, emr: " + emrSpec + "}", func(p Pool) bool {
			return p.BootTimeout == Duration(20*time.Minute) && p.EMR.ServiceRole == "EMR_DefaultRole" &&
				p.EMR.JobFlowRole == "EMR_EC2_DefaultRole" && p.EMR.InstanceGroups[0].Market == MarketOnDemand
		}},
		{"max follows min", "{name: a, provider: local, min_clusters: 3}", func(p Pool) bool {
			return p.MinClusters == 3 && p.MaxClusters == 3
		}},
		{"explicit zero idle timeout kept", "{name: a, provider: local, idle_timeout: 0s}", func(p Pool) bool {
			return p.IdleTimeout == 0
		}},
		{"null is absent", "{name: a, provider: local, idle_timeout: , slots: }", func(p Pool) bool {
			return p.IdleTimeout == IdleTimeout(DefaultIdleTimeout) && p.Slots == DefaultSlots
		}},
		{"merge keys count as present", "{<<: {slots: 3, idle_timeout: 0s}, name: a, provider: local}", func(p Pool) bool {
			return p.Slots == 3 && p.IdleTimeout == 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte("pools:\n  - " + tt.pool + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c.Pools[0]) {
				t.Errorf("pool parsed as %+v", c.Pools[0])
			}
			if c.Listen != DefaultListen || c.Store != DefaultStore || c.LogLevel != DefaultLogLevel {
				t.Errorf("server defaults: %q %q %q", c.Listen, c.Store, c.LogLevel)
			}
		})
	}
}

func TestParseAliasedPool(t *testing.T) {
	// A pool written once and reused whole through an alias.
	c, err := Parse([]byte(`
pools:
  - &a {name: a, provider: local, slots: 0}
`))
	if err == nil || !strings.Contains(err.Error(), `pool "a": slots:`) {
		t.Fatalf("slots: 0 written in the file must be refused, not defaulted; got %v, %+v", err, c)
	}
}

func TestUnknownFields(t *testing.T) {
	tests := []struct {
		name, yaml string
		// want names the pool, the field and its line.
		want string
	}{
		{"top level", "listen: :1\nlisten_addr: x\npools: []\n", "listen_addr: unknown field (line 2)"},
		{"pool", "pools:\n  - name: a\n    provider: local\n    slotz: 3\n", `pool "a": slotz: unknown field (line 4)`},
		{"local", "pools:\n  - name: a\n    provider: local\n    local: {boot_time: 1s, boottime: 2s}\n", `pool "a": local.boottime: unknown field (line 4)`},
		{"emr", "pools:\n  - name: a\n    provider: emr\n    emr:\n      region: x\n      releaselabel: emr-7.5.0\n", `pool "a": emr.releaselabel: unknown field (line 6)`},
		{"instance group", "pools:\n  - name: a\n    provider: emr\n    emr:\n      instance_groups:\n        - {role: MASTER, size: 1}\n",
			`pool "a": emr.instance_groups[0].size: unknown field (line 6)`},
		{"fallback", "pools:\n  - name: a\n    provider: local\n    fallback:\n      after: 2\n", `pool "a": fallback.after: unknown field (line 5)`},
		{"configuration", "pools:\n  - name: a\n    provider: emr\n    emr:\n      configurations: [{classification: x, configurations: [{props: {}}]}]\n",
			`pool "a": emr.configurations[0].configurations[0].props: unknown field (line 5)`},
		{"unnamed pool", "pools:\n  - provider: local\n    slotz: 3\n", "pool[0]: slotz: unknown field (line 3)"},
		{"merged", "pools:\n  - &a {name: a, provider: local, slotz: 3}\n  - {<<: *a, name: b}\n", `pool "b": slotz: unknown field (line 2)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("parsed a config with an unknown field")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not contain %q:\n%v", tt.want, err)
			}
			if !errors.Is(err, berth.ErrInvalid) {
				t.Errorf("error does not wrap berth.ErrInvalid: %v", err)
			}
		})
	}
}

func TestParseRefusesOddDocuments(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"two documents", "pools: [{name: a, provider: local}]\n---\npools: []\n", "parse: the file holds more than one YAML document"},
		{"not a mapping", "- a\n- b\n", "the file must be a mapping of fields, got a list (line 1)"},
		{"bad syntax", "pools: [\n", "parse: yaml: line 1"},
		{"alias of itself", "pools: [{name: a, provider: emr, emr: {configurations: &c [{classification: x, configurations: *c}]}}]", "parse: yaml: anchor 'c' value contains itself"},
		{"empty", "", "pools: at least one pool is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.text, err, tt.want)
			}
			if !errors.Is(err, berth.ErrInvalid) {
				t.Errorf("error does not wrap berth.ErrInvalid: %v", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.yaml")
	if err := os.WriteFile(path, DefaultYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(copy of default.yaml) = %+v, want Default()", c)
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load(missing) = %v, want an error naming the file", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("pools: [{name: a, provider: nope}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), `pool "a": provider:`) {
		t.Errorf("Load(bad) = %v, want an error naming the file, pool and field", err)
	}
}

func TestDomain(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Pool("spark-large")
	want := berth.Pool{
		Name:         "spark-large",
		Provider:     "emr",
		Slots:        8,
		MinClusters:  0,
		MaxClusters:  10,
		IdleTimeout:  10 * time.Minute,
		BootTimeout:  20 * time.Minute,
		MaxLifetime:  12 * time.Hour,
		PricePerHour: 12.5,
		Fallback:     &berth.Fallback{AfterFailures: 2, For: time.Hour},
	}
	if got := p.Domain(); !reflect.DeepEqual(got, want) {
		t.Errorf("Domain() = %+v, want %+v", got, want)
	}
	small, _ := c.Pool("small")
	if got := small.Domain(); got.Fallback != nil || got.IdleTimeout != 30*time.Second {
		t.Errorf("small.Domain() = %+v", got)
	}
}

func TestSplitStore(t *testing.T) {
	tests := []struct{ store, scheme, rest string }{
		{"sqlite://berth.db", "sqlite", "berth.db"},
		{"sqlite:///var/lib/berth/berth.db", "sqlite", "/var/lib/berth/berth.db"},
		{"postgres://u@db/berth", "postgres", "postgres://u@db/berth"},
		{"postgresql://u@db/berth", "postgres", "postgresql://u@db/berth"},
	}
	for _, tt := range tests {
		c := Config{Store: tt.store}
		if scheme, rest := c.SplitStore(); scheme != tt.scheme || rest != tt.rest {
			t.Errorf("SplitStore(%q) = %q, %q; want %q, %q", tt.store, scheme, rest, tt.scheme, tt.rest)
		}
	}
}

// The example configurations the README points to stay valid.
func TestExamples(t *testing.T) {
	paths, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(raw); err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
	}
}
