package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/berthhq/berth/internal/berth"
)

// emrSpec is a valid emr spec in YAML flow style, to build pools from.
const emrSpec = `{region: us-east-1, release_label: emr-7.5.0, instance_groups: [{role: MASTER, instance_type: m5.xlarge, count: 1}]}`

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// want are substrings the error must contain, each naming the pool
		// (when there is one) and the field.
		want []string
	}{
		{"no pools", "listen: 127.0.0.1:1\n", []string{"pools: at least one pool is required"}},
		{"listen", "listen: localhost\npools: [{name: a, provider: local}]", []string{"listen: must be host:port"}},
		{"listen port", "listen: ':http'\npools: [{name: a, provider: local}]", []string{"listen: must be host:port"}},
		{"store scheme", "store: mysql://x\npools: [{name: a, provider: local}]", []string{`store: unknown scheme "mysql"`}},
		{"store no scheme", "store: berth.db\npools: [{name: a, provider: local}]", []string{"store: must be sqlite://PATH"}},
		{"store no path", "store: 'sqlite://'\npools: [{name: a, provider: local}]", []string{"store: sqlite:// needs a file path"}},
		{"store postgres host", "store: 'postgres://'\npools: [{name: a, provider: local}]", []string{"store: not a postgres URL"}},
		{"token", "token: 'has space'\npools: [{name: a, provider: local}]", []string{"token: may hold only"}},
		{"log level", "log_level: verbose\npools: [{name: a, provider: local}]", []string{`log_level: must be debug, info, warn or error, not "verbose"`}},

		{"name required", "pools: [{name: a, provider: local}, {provider: local}]", []string{"pool[1]: name: required"}},
		{"name pattern", "pools: [{name: Spark Large, provider: local}]", []string{`pool "Spark Large": name: must be`}},
		{"name too long", "pools: [{name: " + strings.Repeat("a", 64) + ", provider: local}]", []string{": name: must be 1 to 63"}},
		{"duplicate", "pools: [{name: small, provider: local}, {name: x, provider: local}, {name: small, provider: local}]",
			[]string{`pools: duplicate name "small" (pool[0] and pool[2])`}},
		{"provider required", "pools: [{name: a}]", []string{`pool "a": provider: required`}},
		{"provider unknown", "pools: [{name: a, provider: k8s}]", []string{`pool "a": provider: must be "local", "emr" or "sim", not "k8s"`}},
		{"slots zero", "pools: [{name: a, provider: local, slots: 0}]", []string{`pool "a": slots: must be 1..256`}},
		{"slots big", "pools: [{name: a, provider: local, slots: 257}]", []string{`pool "a": slots: must be 1..256`}},
		{"min negative", "pools: [{name: a, provider: local, min_clusters: -1}]", []string{`pool "a": min_clusters: must be ≥ 0`}},
		{"max zero", "pools: [{name: a, provider: local, max_clusters: 0}]", []string{`pool "a": max_clusters: must be 1..1000`}},
		{"max big", "pools: [{name: a, provider: local, max_clusters: 1001}]", []string{`pool "a": max_clusters: must be 1..1000`}},
		{"max below min", "pools: [{name: spark-large, provider: local, min_clusters: 2, max_clusters: 1}]",
			[]string{`pool "spark-large": max_clusters: must be ≥ min_clusters (2)`}},
		{"idle negative", "pools: [{name: a, provider: local, idle_timeout: -1s}]", []string{`pool "a": idle_timeout: must be ≥ 0`}},
		{"boot zero", "pools: [{name: a, provider: local, boot_timeout: 0s}]", []string{`pool "a": boot_timeout: must be > 0`}},
		{"lifetime negative", "pools: [{name: a, provider: local, max_lifetime: -1h}]", []string{`pool "a": max_lifetime: must be ≥ 0`}},
		{"price negative", "pools: [{name: a, provider: local, price_per_hour: -1}]", []string{`pool "a": price_per_hour: must be a number ≥ 0`}},
		{"price nan", "pools: [{name: a, provider: local, price_per_hour: .nan}]", []string{`pool "a": price_per_hour:`}},
		{"price inf", "pools: [{name: a, provider: local, price_per_hour: .inf}]", []string{`pool "a": price_per_hour:`}},

		// Values that do not fit their field are reported like the
		// mistakes Validate finds, with the line beside.
		{"slots fraction", "pools: [{name: small, provider: local, slots: 2.5}]", []string{`pool "small": slots: must be a whole number, got 2.5 (line 1)`}},
		{"slots infinite", "pools: [{name: a, provider: local, slots: .inf}]", []string{`pool "a": slots: must be a whole number, got .inf`}},
		{"slots string", "pools: [{name: a, provider: local, slots: two}]", []string{`pool "a": slots: must be a whole number, got "two"`}},
		{"slots quoted", "pools: [{name: a, provider: local, slots: '2'}]", []string{`pool "a": slots: must be a whole number, got "2"`}},
		{"slots list", "pools: [{name: a, provider: local, slots: [2]}]", []string{`pool "a": slots: must be a whole number, got a list`}},
		{"min fraction", "pools: [{name: a, provider: local, min_clusters: 0.5}]", []string{`pool "a": min_clusters: must be a whole number, got 0.5`}},
		{"max out of range", "pools: [{name: a, provider: local, max_clusters: 99999999999999999999}]",
			[]string{`pool "a": max_clusters: number out of range: 99999999999999999999`}},
		{"max beyond int64", "pools: [{name: a, provider: local, max_clusters: 18446744073709551615}]",
			[]string{`pool "a": max_clusters: number out of range: 18446744073709551615`}},
		{"max 2^63 as a float", "pools: [{name: a, provider: local, max_clusters: 9.223372036854775808e18}]",
			[]string{`pool "a": max_clusters: number out of range: 9.223372036854775808e18`}},
		{"min out of range", "pools: [{name: a, provider: local, min_clusters: -1e30}]", []string{`pool "a": min_clusters: number out of range: -1e30`}},
		{"price out of range", "pools: [{name: a, provider: local, price_per_hour: 1e999}]", []string{`pool "a": price_per_hour: number out of range: 1e999`}},
		{"price string", "pools: [{name: a, provider: local, price_per_hour: cheap}]", []string{`pool "a": price_per_hour: must be a number, got "cheap"`}},
		{"boot timeout out of range", "pools: [{name: a, provider: local, boot_timeout: 999999999h}]",
			[]string{`pool "a": boot_timeout: duration out of range: "999999999h"`}},
		{"local boot time out of range", "pools: [{name: small, provider: local, local: {boot_time: 999999999h}}]",
			[]string{`pool "small": local.boot_time: duration out of range: "999999999h"`}},
		{"local not a mapping", "pools: [{name: a, provider: local, local: fast}]", []string{`pool "a": local: must be a mapping of fields, got "fast"`}},
		{"fallback after fraction", "pools: [{name: a, provider: local, fallback: {after_failures: 1.5, for: 1h, local: {}}}]",
			[]string{`pool "a": fallback.after_failures: must be a whole number, got 1.5`}},
		{"fallback for out of range", "pools: [{name: a, provider: local, fallback: {after_failures: 1, for: 99999999999h, local: {}}}]",
			[]string{`pool "a": fallback.for: duration out of range`}},
		{"emr subnet both", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7.5.0, service_role: s, job_flow_role: j, instance_fleets: [{role: MASTER, target_on_demand_capacity: 1, instance_types: [m5.xlarge]}], subnet_id: subnet-1, subnet_ids: [subnet-2]}}]",
			[]string{`pool "a": emr.subnet_ids: give subnet_id or subnet_ids, not both`}},
		{"emr subnets without fleets", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7.5.0, service_role: s, job_flow_role: j, instance_groups: [{role: MASTER, instance_type: m, count: 1}], subnet_ids: [subnet-2]}}]",
			[]string{`pool "a": emr.subnet_ids: only with instance_fleets`}},
		{"emr ids", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7.5.0, service_role: s, job_flow_role: j, instance_groups: [{role: MASTER, instance_type: m, count: 1}], master_security_group: g-1, additional_security_groups: [x], custom_ami_id: img-1, ebs_root_volume_size: 8}}]",
			[]string{`pool "a": emr.master_security_group: must look like sg-`, `pool "a": emr.additional_security_groups[0]: must look like sg-`, `pool "a": emr.custom_ami_id: must look like ami-`, `pool "a": emr.ebs_root_volume_size: must be 15..100 GiB`}},
		{"emr fleet strategies", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7.5.0, service_role: s, job_flow_role: j, instance_fleets: [{role: MASTER, target_on_demand_capacity: 1, instance_types: [m5.xlarge], on_demand_allocation_strategy: cheapest, spot_allocation_strategy: random, spot_timeout_minutes: 2, spot_timeout_action: WAIT}]}}]",
			[]string{`pool "a": emr.instance_fleets[0].on_demand_allocation_strategy: must be one of lowest-price, prioritized, not "cheapest"`, `emr.instance_fleets[0].spot_allocation_strategy: must be one of`, `emr.instance_fleets[0].spot_timeout_minutes: must be 5..1440, not 2`}},
		{"emr spot timeout action", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7.5.0, service_role: s, job_flow_role: j, instance_fleets: [{role: MASTER, target_on_demand_capacity: 1, instance_types: [m5.xlarge], spot_timeout_minutes: 10, spot_timeout_action: WAIT}]}}]",
			[]string{`pool "a": emr.instance_fleets[0].spot_timeout_action: must be SWITCH_TO_ON_DEMAND or TERMINATE_CLUSTER, not "WAIT"`}},
		{"emr count fraction", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1.5}]}}]",
			[]string{`pool "a": emr.instance_groups[0].count: must be a whole number, got 1.5`}},
		{"emr fleet capacity", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_fleets: [{role: MASTER, target_on_demand_capacity: 1, target_spot_capacity: 0.5, instance_types: [m]}]}}]",
			[]string{`pool "a": emr.instance_fleets[0].target_spot_capacity: must be a whole number, got 0.5`}},
		{"fallback emr count", "pools: [{name: a, provider: emr, emr: " + emrSpec + ", fallback: {after_failures: 1, for: 1h, emr: {instance_groups: [{role: MASTER, instance_type: m, count: 1e99}]}}}]",
			[]string{`pool "a": fallback.emr.instance_groups[0].count: number out of range: 1e99`}},
		{"emr tag value", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1}], tags: {team: [a, b]}}}]",
			[]string{`pool "a": emr.tags["team"]: must be a string, got a list`}},
		{"emr applications", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, applications: Spark, instance_groups: [{role: MASTER, instance_type: m, count: 1}]}}]",
			[]string{`pool "a": emr.applications: must be a list, got "Spark"`}},
		{"name not a string", "pools: [{name: {a: 1}, provider: local}]", []string{`pool[0]: name: must be a string, got a mapping`}},
		{"given twice", "pools:\n  - name: a\n    provider: local\n    slots: 2\n    slots: 3\n", []string{`pool "a": slots: given twice, first at line 4 (line 5)`}},
		{"pools not a list", "pools: {name: a}", []string{`pools: must be a list of pools, got a mapping`}},
		{"listen not a string", "listen: [a]\npools: [{name: a, provider: local}]", []string{`listen: must be a string, got a list`}},

		{"local boot time", "pools: [{name: a, provider: local, local: {boot_time: -1s}}]", []string{`pool "a": local.boot_time: must be ≥ 0`}},
		{"local poll interval", "pools: [{name: a, provider: local, local: {poll_interval: 2m}}]", []string{`pool "a": local.poll_interval: must be between 0 (the default) and 1m`}},
		{"local boot time over timeout", "pools: [{name: a, provider: local, local: {boot_time: 2m}}]",
			[]string{`pool "a": local.boot_time: must be less than the pool's boot_timeout (1m0s)`}},
		{"emr spec on local", "pools: [{name: a, provider: local, emr: " + emrSpec + "}]", []string{`pool "a": emr: only for emr pools`}},
		{"local spec on emr", "pools: [{name: a, provider: emr, emr: " + emrSpec + ", local: {}}]", []string{`pool "a": local: only for local pools`}},
		{"emr required", "pools: [{name: a, provider: emr}]", []string{`pool "a": emr: required for emr pools`}},
		{"emr region and release", "pools: [{name: a, provider: emr, emr: {instance_groups: [{role: MASTER, instance_type: m5.xlarge, count: 1}]}}]",
			[]string{`pool "a": emr.region: required`, `pool "a": emr.release_label: required`}},
		{"emr release form", "pools: [{name: a, provider: emr, emr: {region: r, release_label: '7.5.0', instance_groups: [{role: MASTER, instance_type: m, count: 1}]}}]",
			[]string{`pool "a": emr.release_label: must look like emr-7.5.0`}},
		{"emr endpoint", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, endpoint: 'localhost:4566', instance_groups: [{role: MASTER, instance_type: m, count: 1}]}}]",
			[]string{`pool "a": emr.endpoint: must be an http:// or https:// URL`}},
		{"emr log uri", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, log_uri: hdfs:///logs, instance_groups: [{role: MASTER, instance_type: m, count: 1}]}}]",
			[]string{`pool "a": emr.log_uri: must be an s3:// location`}},
		{"emr no groups", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7}}]",
			[]string{`pool "a": emr.instance_groups: required (or instance_fleets)`}},
		{"emr groups and fleets", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1}], instance_fleets: [{role: MASTER, target_on_demand_capacity: 1, instance_types: [m]}]}}]",
			[]string{`pool "a": emr.instance_groups: give instance_groups or instance_fleets, not both`}},
		{"emr no master", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: CORE, instance_type: m, count: 2}]}}]",
			[]string{`pool "a": emr.instance_groups: exactly one MASTER group is required, not 0`}},
		{"emr two masters", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1}, {role: MASTER, instance_type: m, count: 1}]}}]",
			[]string{`pool "a": emr.instance_groups: exactly one MASTER group is required, not 2`}},
		{"emr master count", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 3}]}}]",
			[]string{`pool "a": emr.instance_groups[0].count: a MASTER group must have count 1`}},
		{"emr group fields", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1}, {role: WORKER, count: 0, market: RESERVED}]}}]",
			[]string{`pool "a": emr.instance_groups[1].role: must be MASTER, CORE or TASK, not "WORKER"`,
				`pool "a": emr.instance_groups[1].instance_type: required`,
				`pool "a": emr.instance_groups[1].count: must be ≥ 1`,
				`pool "a": emr.instance_groups[1].market: must be ON_DEMAND or SPOT, not "RESERVED"`}},
		{"emr two cores", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1}, {role: CORE, instance_type: m, count: 1}, {role: CORE, instance_type: m, count: 1}]}}]",
			[]string{`pool "a": emr.instance_groups: at most one CORE group, not 2`}},
		{"emr bid on demand", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1, bid_price: '0.5'}]}}]",
			[]string{`pool "a": emr.instance_groups[0].bid_price: only for SPOT groups`}},
		{"emr bad bid", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1, market: SPOT, bid_price: cheap}]}}]",
			[]string{`pool "a": emr.instance_groups[0].bid_price: must be a price in USD`}},
		{"emr fleets", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_fleets: [{role: MASTER, target_on_demand_capacity: 1, target_spot_capacity: 1, instance_types: [m]}, {role: CORE, instance_types: []}]}}]",
			[]string{`pool "a": emr.instance_fleets[0].target_on_demand_capacity: a MASTER fleet's target capacities must add up to 1, not 2`,
				`pool "a": emr.instance_fleets[1].target_on_demand_capacity: target capacities must add up to at least 1`,
				`pool "a": emr.instance_fleets[1].instance_types: at least one instance type is required`}},
		{"emr fleet no master", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_fleets: [{role: CORE, target_spot_capacity: 2, instance_types: [m]}]}}]",
			[]string{`pool "a": emr.instance_fleets: exactly one MASTER fleet is required, not 0`}},
		{"emr bootstrap", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1}], bootstrap_actions: [{args: [x]}]}}]",
			[]string{`pool "a": emr.bootstrap_actions[0].name: required`, `pool "a": emr.bootstrap_actions[0].path: required`}},
		{"emr nested configuration", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1}], configurations: [{classification: spark-env, configurations: [{properties: {A: b}}]}]}}]",
			[]string{`pool "a": emr.configurations[0].configurations[0].classification: required`}},
		{"emr tags", "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1}], tags: {'': x}}}]",
			[]string{`pool "a": emr.tags: key "" must be`}},

		{"fallback counts", "pools: [{name: a, provider: local, fallback: {after_failures: 0, for: 0s, local: {}}}]",
			[]string{`pool "a": fallback.after_failures: must be ≥ 1`, `pool "a": fallback.for: must be > 0`}},
		{"fallback kind local", "pools: [{name: a, provider: local, fallback: {after_failures: 1, for: 1h, emr: " + emrSpec + "}}]",
			[]string{`pool "a": fallback.emr: only for emr pools`, `pool "a": fallback.local: required`}},
		{"fallback kind emr", "pools: [{name: a, provider: emr, emr: " + emrSpec + ", fallback: {after_failures: 1, for: 1h, local: {}}}]",
			[]string{`pool "a": fallback.local: only for local pools`, `pool "a": fallback.emr: required`}},
		{"fallback local boot time", "pools: [{name: a, provider: local, fallback: {after_failures: 1, for: 1h, local: {boot_time: 5m}}}]",
			[]string{`pool "a": fallback.local.boot_time: must be less than the pool's boot_timeout`}},
		{"fallback emr groups", "pools: [{name: a, provider: emr, emr: " + emrSpec + ", fallback: {after_failures: 1, for: 1h, emr: {instance_groups: [{role: CORE, instance_type: m, count: 1, market: SPOT}]}}}]",
			[]string{`pool "a": fallback.emr.instance_groups: exactly one MASTER group is required, not 0`}},
		{"fallback emr region", "pools: [{name: a, provider: emr, emr: " + emrSpec + ", fallback: {after_failures: 1, for: 1h, emr: {region: eu-west-1}}}]",
			[]string{`pool "a": fallback.emr.region: must be the pool's region, "us-east-1": a pool's clusters live in one region`}},
		{"fallback emr both", "pools: [{name: a, provider: emr, emr: " + emrSpec + ", fallback: {after_failures: 1, for: 1h, emr: {instance_groups: [{role: MASTER, instance_type: m, count: 1}], instance_fleets: [{role: MASTER, target_on_demand_capacity: 1, instance_types: [m]}]}}}]",
			[]string{`pool "a": fallback.emr.instance_groups: give instance_groups or instance_fleets, not both`}},
		{"fallback emr own field", "pools: [{name: a, provider: emr, emr: " + emrSpec + ", fallback: {after_failures: 1, for: 1h, emr: {log_uri: 'hdfs://x'}}}]",
			[]string{`pool "a": fallback.emr.log_uri: must be an s3:// location`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if !errors.Is(err, berth.ErrInvalid) {
				t.Errorf("error does not wrap berth.ErrInvalid")
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Errorf("error holds no *FieldError naming a field: %v", err)
			}
		})
	}
}

// TestValidateCollectsAll checks that one pass reports every mistake, so a
// user fixes them all in one go, and reports each only once.
func TestValidateCollectsAll(t *testing.T) {
	_, err := Parse([]byte(`
listen: nope
log_level: loud
pools:
  - {name: a, provider: local, slots: 0}
  - {provider: emr, max_clusters: 0}
  - name: b
    provider: emr
    emr: {release_label: emr-7.5.0, instance_groups: [{role: MASTER, instance_type: m, count: 1}]}
    fallback: {after_failures: 1, for: 1h, emr: {instance_groups: [{role: MASTER, instance_type: m, count: 2}]}}
`))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	want := []string{
		"listen: ",
		"log_level: ",
		`pool "a": slots: `,
		"pool[1]: name: required",
		"pool[1]: max_clusters: ",
		"pool[1]: emr: required",
		`pool "b": emr.region: required`,
		`pool "b": fallback.emr.instance_groups[0].count: a MASTER group must have count 1`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not contain %q", w)
		}
	}
	// The fallback takes its region from the primary; the missing region is
	// the primary's mistake and is reported under emr only.
	if strings.Contains(msg, "fallback.emr.region") {
		t.Errorf("a mistake of the primary spec is reported again under fallback:\n%s", msg)
	}
	if n := len(strings.Split(msg, "\n")); n != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", n, len(want), msg)
	}
}

// TestDecodeCollectsAll checks that the values that do not fit their
// fields are reported beside Validate's mistakes, each once: a value that
// could not be read is not reported again as the zero it decoded to.
func TestDecodeCollectsAll(t *testing.T) {
	_, err := Parse([]byte(`
log_level: loud
pools:
  - {name: a, provider: local, slots: two, max_clusters: 99999999999999999999, boot_timeout: 999999999h, colour: blue}
  - not a pool
  - {name: c, provider: local, min_clusters: -1, local: {boot_time: 5m}}
  - name: d
    provider: emr
    emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1}, {role: CORE, instance_type: m, count: many}]}
    fallback: {after_failures: 1, for: 1h, emr: {instance_groups: 3}}
`))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	want := []string{
		`pool "a": slots: must be a whole number, got "two" (line 4)`,
		`pool "a": max_clusters: number out of range: 99999999999999999999 (line 4)`,
		`pool "a": boot_timeout: duration out of range: "999999999h"`,
		`pool "a": colour: unknown field (line 4)`,
		`pool[1]: must be a mapping of fields, got "not a pool" (line 5)`,
		`pool "d": emr.instance_groups[1].count: must be a whole number, got "many" (line 9)`,
		`pool "d": fallback.emr.instance_groups: must be a list, got 3 (line 10)`,
		"log_level: must be debug, info, warn or error",
		`pool "c": min_clusters: must be ≥ 0`,
		`pool "c": local.boot_time: must be less than the pool's boot_timeout`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not contain %q", w)
		}
	}
	if n := len(strings.Split(msg, "\n")); n != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", n, len(want), msg)
	}
	if !errors.Is(err, berth.ErrInvalid) {
		t.Errorf("error does not wrap berth.ErrInvalid")
	}
}

func TestValidateAccepts(t *testing.T) {
	for name, text := range map[string]string{
		"listen any interface": "listen: ':8080'\npools: [{name: a, provider: local}]",
		"listen port zero":     "listen: '127.0.0.1:0'\npools: [{name: a, provider: local}]",
		"postgres store":       "store: postgres://berth@db.internal/berth\npools: [{name: a, provider: local}]",
		"token68":              "token: 'abc-._~+/XYZ09=='\npools: [{name: a, provider: local}]",
		"name edge":            "pools: [{name: 0_a-" + strings.Repeat("b", 59) + ", provider: local}]",
		"zero idle and price":  "pools: [{name: a, provider: local, idle_timeout: 0s, price_per_hour: 0}]",
		"whole floats":         "pools: [{name: a, provider: local, slots: 2.0, max_clusters: 1e3, price_per_hour: 2}]",
		"integer forms":        "pools: [{name: a, provider: local, slots: 0x10, max_clusters: 1_000}]",
		"merged pool":          "pools: [&a {name: a, provider: local, slots: 2}, {<<: *a, name: b, max_clusters: 3}]",
		"longest duration":     "pools: [{name: a, provider: local, max_lifetime: 2562047h}]",
		"spot bid":             "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7, instance_groups: [{role: MASTER, instance_type: m, count: 1, market: SPOT, bid_price: 0.5}]}}]",
		"emr fleets in full": "pools: [{name: a, provider: emr, emr: {region: r, release_label: emr-7.5.0, subnet_ids: [subnet-1, subnet-2], " +
			"master_security_group: sg-1, slave_security_group: sg-2, additional_security_groups: [sg-3], security_configuration: kerberos, " +
			"custom_ami_id: ami-1, ebs_root_volume_size: 50, terminate_strays: true, instance_fleets: [{role: MASTER, target_on_demand_capacity: 1, instance_types: [m5.xlarge]}, " +
			"{role: CORE, target_spot_capacity: 8, instance_types: [r5.2xlarge, r6i.2xlarge], on_demand_allocation_strategy: lowest-price, " +
			"spot_allocation_strategy: price-capacity-optimized, spot_timeout_minutes: 20, spot_timeout_action: SWITCH_TO_ON_DEMAND}]}}]",
		"fallback fleets over groups": "pools: [{name: a, provider: emr, emr: " + emrSpec +
			", fallback: {after_failures: 3, for: 30m, emr: {instance_fleets: [{role: MASTER, target_on_demand_capacity: 1, instance_types: [m5.xlarge, m6i.xlarge]}]}}}]",
		"fallback subnet only": "pools: [{name: a, provider: emr, emr: " + emrSpec +
			", fallback: {after_failures: 1, for: 1h, emr: {subnet_id: subnet-2}}}]",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(text)); err != nil {
				t.Errorf("Parse: %v", err)
			}
		})
	}
}

func TestFieldErrorText(t *testing.T) {
	tests := []struct {
		err  FieldError
		want string
	}{
		{FieldError{Pool: `pool "spark-large"`, Field: "max_clusters", Msg: "must be ≥ min_clusters (2)"}, `pool "spark-large": max_clusters: must be ≥ min_clusters (2)`},
		{FieldError{Field: "pools", Msg: `duplicate name "small"`}, `pools: duplicate name "small"`},
		{FieldError{Pool: "pool[1]", Field: "slotz", Msg: "unknown field", Line: 7}, "pool[1]: slotz: unknown field (line 7)"},
		{FieldError{Pool: "pool[1]", Msg: "must be a mapping of fields"}, "pool[1]: must be a mapping of fields"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
