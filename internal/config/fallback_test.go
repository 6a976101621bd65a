package config

import (
	"reflect"
	"testing"
)

func TestFallbackEMR(t *testing.T) {
	primary := &EMRSpec{
		Region:           "us-east-1",
		Endpoint:         "http://127.0.0.1:4566",
		ReleaseLabel:     "emr-7.5.0",
		Applications:     []string{"Spark"},
		ServiceRole:      "svc",
		JobFlowRole:      "ec2",
		LogURI:           "s3://b/logs/",
		InstanceGroups:   []InstanceGroup{{Role: RoleMaster, InstanceType: "m5.xlarge", Count: 1, Market: MarketSpot}},
		BootstrapActions: []BootstrapAction{{Name: "b", Path: "s3://b/b.sh", Args: []string{"x"}}},
		Configurations:   []Configuration{{Classification: "spark-defaults", Properties: map[string]string{"k": "v"}}},
		Tags:             map[string]string{"team": "data"},
		SubnetID:         "subnet-1",
		KeyName:          "ops",
	}
	fleets := []InstanceFleet{{Role: RoleMaster, TargetOnDemandCapacity: 1, InstanceTypes: []string{"m5.xlarge"}}}
	onDemand := []InstanceGroup{{Role: RoleMaster, InstanceType: "m5.xlarge", Count: 1, Market: MarketOnDemand}}

	tests := []struct {
		name     string
		fallback *Fallback
		want     func() *EMRSpec
	}{
		{"no fallback", nil, func() *EMRSpec { return nil }},
		{"local fallback only", &Fallback{AfterFailures: 1, For: dur("1h"), Local: &LocalSpec{}}, func() *EMRSpec { return nil }},
		{"groups replace groups", &Fallback{AfterFailures: 1, For: dur("1h"), EMR: &EMRSpec{InstanceGroups: onDemand}}, func() *EMRSpec {
			w := primary.Clone()
			w.InstanceGroups = onDemand
			return w
		}},
		{"fleets replace groups", &Fallback{AfterFailures: 1, For: dur("1h"), EMR: &EMRSpec{InstanceFleets: fleets}}, func() *EMRSpec {
			w := primary.Clone()
			w.InstanceGroups, w.InstanceFleets = nil, fleets
			return w
		}},
		{"given fields win, empty ones are the primary's", &Fallback{AfterFailures: 1, For: dur("1h"), EMR: &EMRSpec{
			SubnetID: "subnet-2", Tags: map[string]string{"spot": "no"}, Applications: []string{"Spark", "Hive"},
		}}, func() *EMRSpec {
			w := primary.Clone()
			w.SubnetID, w.Tags, w.Applications = "subnet-2", map[string]string{"spot": "no"}, []string{"Spark", "Hive"}
			return w
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Pool{Name: "p", Provider: ProviderEMR, EMR: primary, Fallback: tt.fallback}
			got, want := p.FallbackEMR(), tt.want()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("FallbackEMR() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestFallbackEMRIsACopy checks that a provider may change the merged spec
// (add its own tags, say) without changing the pool's.
func TestFallbackEMRIsACopy(t *testing.T) {
	primary := &EMRSpec{
		Region: "r", ReleaseLabel: "emr-7.5.0",
		InstanceFleets:   []InstanceFleet{{Role: RoleMaster, TargetOnDemandCapacity: 1, InstanceTypes: []string{"m5.xlarge"}}},
		BootstrapActions: []BootstrapAction{{Name: "b", Path: "p", Args: []string{"x"}}},
		Configurations: []Configuration{{Classification: "spark-env", Configurations: []Configuration{
			{Classification: "export", Properties: map[string]string{"A": "1"}},
		}}},
		Tags: map[string]string{"team": "data"},
	}
	before := primary.Clone()
	p := Pool{Provider: ProviderEMR, EMR: primary, Fallback: &Fallback{AfterFailures: 1, For: dur("1h"), EMR: &EMRSpec{SubnetID: "s"}}}
	m := p.FallbackEMR()
	m.Tags["berth-cluster"] = "c1"
	m.InstanceFleets[0].InstanceTypes[0] = "changed"
	m.BootstrapActions[0].Args[0] = "changed"
	m.Configurations[0].Configurations[0].Properties["A"] = "changed"
	if !reflect.DeepEqual(primary, before) {
		t.Errorf("changing the merged spec changed the primary:\n%+v\nwas\n%+v", primary, before)
	}
}

func TestFallbackLocal(t *testing.T) {
	primary := &LocalSpec{BootTime: dur("2s"), Dir: "state"}
	tests := []struct {
		name string
		fb   *Fallback
		want *LocalSpec
	}{
		{"none", nil, nil},
		{"boot time replaced, dir kept", &Fallback{Local: &LocalSpec{BootTime: dur("10s")}}, &LocalSpec{BootTime: dur("10s"), Dir: "state"}},
		{"zero boot time replaces too", &Fallback{Local: &LocalSpec{}}, &LocalSpec{Dir: "state"}},
		{"own dir", &Fallback{Local: &LocalSpec{Dir: "other"}}, &LocalSpec{Dir: "other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Pool{Provider: ProviderLocal, Local: primary, Fallback: tt.fb}
			if got := p.FallbackLocal(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FallbackLocal() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
