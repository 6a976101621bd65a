package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// readDocument parses data into its one YAML document; nil when data holds
// none (an empty file, or only comments).
func readDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil, nil
	case err != nil:
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("the file holds more than one YAML document")
	}
	return &doc, nil
}

// decode fills c from doc as far as the values allow and returns, each
// naming its pool and field, every key the configuration has no field for
// and every value that does not fit its field. yaml reports such mistakes
// by line only, or not at all (it truncates 2.5 into an int), so a checker
// walks the document beside the types and says what is wrong; yaml still
// does the decoding. The error is for a document yaml cannot decode at all
// (an alias of itself, say).
func decode(doc *yaml.Node, c *Config) ([]*FieldError, error) {
	// yaml goes first: the checker follows aliases only once yaml has
	// found them finite.
	if _, err := decodeTolerant(doc, c); err != nil {
		return nil, err
	}
	var ck checker
	ck.value(doc, reflect.TypeFor[Config](), "")
	if ck.dropped {
		// yaml decodes nothing of a mapping that gives a key twice; now
		// that the checker has reported and dropped the second, it
		// decodes the rest.
		*c = Config{}
	}
	typeErr, err := decodeTolerant(doc, c)
	if err != nil {
		return nil, err
	}
	if len(ck.errs) == 0 && typeErr != nil {
		// The checker missed what yaml refused: yaml's words, then.
		return nil, typeErr
	}
	return ck.errs, nil
}

// decodeTolerant decodes doc into c, leaving each field yaml cannot take at
// its zero value, and returns yaml's complaints about them. The error is
// for a document it cannot decode at all.
func decodeTolerant(doc *yaml.Node, c *Config) (*yaml.TypeError, error) {
	var typeErr *yaml.TypeError
	if err := doc.Decode(c); err != nil && !errors.As(err, &typeErr) {
		return nil, err
	}
	// Each pool is decoded again on its own: yaml drops an element it
	// cannot decode at all from a list, which would shift the indexes that
	// name the pools after it.
	if pools := poolsNode(doc); pools != nil {
		c.Pools = make([]Pool, len(pools.Content))
		for i, p := range pools.Content {
			if err := p.Decode(&c.Pools[i]); err != nil && !errors.As(err, &typeErr) {
				return nil, err
			}
		}
	}
	return typeErr, nil
}

// poolsNode is the list of pools of a parsed document; nil when it has
// none.
func poolsNode(doc *yaml.Node) *yaml.Node {
	if doc == nil {
		return nil
	}
	root := resolve(doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = resolve(root.Content[0])
	}
	if root.Kind != yaml.MappingNode {
		return nil
	}
	var pools *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "pools" {
			pools = resolve(root.Content[i+1])
		}
	}
	if pools == nil || pools.Kind != yaml.SequenceNode {
		return nil
	}
	return pools
}

// poolWhere is how errors name pool i: by its name when it has one.
func poolWhere(i int, name string) string {
	if name != "" {
		return fmt.Sprintf("pool %q", name)
	}
	return fmt.Sprintf("pool[%d]", i)
}

var (
	durationType    = reflect.TypeFor[Duration]()
	idleTimeoutType = reflect.TypeFor[IdleTimeout]()
	poolsType       = reflect.TypeFor[[]Pool]()
)

// checker walks a document beside the Go type it decodes into, following
// yaml's rules for keys (yaml tags, aliases, merge keys), and collects the
// values that do not fit.
type checker struct {
	// pool names the pool being walked; empty outside the pools.
	pool string
	errs []*FieldError
	// dropped says a key given twice was taken out of the document.
	dropped bool
}

func (ck *checker) add(n *yaml.Node, field, format string, args ...any) {
	ck.errs = append(ck.errs, &FieldError{Pool: ck.pool, Field: field, Msg: fmt.Sprintf(format, args...), Line: n.Line})
}

// value checks n as the value of field, of type t.
func (ck *checker) value(n *yaml.Node, t reflect.Type, field string) {
	n = resolve(n)
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = resolve(n.Content[0])
	}
	if n.ShortTag() == "!!null" {
		// Absent: the field keeps its zero value, or takes its default.
		return
	}
	switch {
	case t == durationType:
		if _, err := parseDuration(n); err != nil {
			ck.add(n, field, "%v", err)
		}
		return
	case t == idleTimeoutType:
		if _, err := parseIdleTimeout(n); err != nil {
			ck.add(n, field, "%v", err)
		}
		return
	case t == poolsType && ck.pool == "":
		ck.poolList(n, field)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		ck.value(n, t.Elem(), field)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			what := "must be"
			if field == "" && ck.pool == "" {
				what = "the file must be"
			}
			ck.add(n, field, "%s a mapping of fields, got %s", what, describe(n))
			return
		}
		fields := yamlFields(t)
		for _, e := range ck.entries(n, field) {
			f, ok := fields[e.key.Value]
			if !ok {
				ck.add(e.key, join(field, e.key.Value), "unknown field")
				continue
			}
			ck.value(e.value, f, join(field, e.key.Value))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			ck.add(n, field, "must be a mapping, got %s", describe(n))
			return
		}
		for _, e := range ck.entries(n, field) {
			ck.value(e.key, t.Key(), field)
			ck.value(e.value, t.Elem(), fmt.Sprintf("%s[%q]", field, e.key.Value))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ck.add(n, field, "must be a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			ck.value(item, t.Elem(), fmt.Sprintf("%s[%d]", field, i))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if msg := checkInteger(n, t); msg != "" {
			ck.add(n, field, "%s", msg)
		}
	case reflect.Float32, reflect.Float64:
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			if beyondFloat(n) {
				ck.add(n, field, "number out of range: %s", n.Value)
				return
			}
			ck.add(n, field, "must be a number, got %s", describe(n))
		}
	default:
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			ck.add(n, field, "must be a %s, got %s", t.Kind(), describe(n))
		}
	}
}

// poolList checks the pools, each with the name errors give it.
func (ck *checker) poolList(n *yaml.Node, field string) {
	if n.Kind != yaml.SequenceNode {
		ck.add(n, field, "must be a list of pools, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		ck.pool = poolWhere(i, nameOf(item))
		ck.value(item, poolsType.Elem(), "")
	}
	ck.pool = ""
}

// nameOf is the name a pool is written with, as yaml decodes it; empty
// when it has none, or one that is not a string.
func nameOf(pool *yaml.Node) string {
	pool = resolve(pool)
	if pool.Kind != yaml.MappingNode {
		return ""
	}
	var merge *yaml.Node
	for i := 0; i+1 < len(pool.Content); i += 2 {
		k, v := pool.Content[i], resolve(pool.Content[i+1])
		switch {
		case isMerge(k):
			merge = resolve(v)
		case k.Value != "name":
		case v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null":
			return v.Value
		default:
			return ""
		}
	}
	if merge == nil {
		return ""
	}
	bases := []*yaml.Node{merge}
	if merge.Kind == yaml.SequenceNode {
		bases = merge.Content
	}
	for _, b := range bases {
		if name := nameOf(b); name != "" {
			return name
		}
	}
	return ""
}

// checkInteger says what is wrong with n as a value of integer type t;
// empty when nothing is. yaml truncates a float into an int, and wraps one
// beyond int64 around; both are refused here.
func checkInteger(n *yaml.Node, t reflect.Type) string {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
		var f float64
		_ = n.Decode(&f)
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f):
			return "must be a whole number, got " + n.Value
		case f < math.MinInt64 || f >= 1<<63:
			return "number out of range: " + n.Value
		}
	}
	if err := n.Decode(reflect.New(t).Interface()); err == nil {
		return ""
	}
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float" || beyondFloat(n)) {
		return "number out of range: " + n.Value
	}
	return "must be a whole number, got " + describe(n)
}

// beyondFloat reports whether n is a number written plainly that yaml took
// for a string because it is beyond float64 (1e999).
func beyondFloat(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode || n.Style != 0 || n.ShortTag() != "!!str" {
		return false
	}
	_, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	return errors.Is(err, strconv.ErrRange)
}

// describe is n as an error message quotes it.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.ShortTag() == "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// entry is one key of a mapping and its value.
type entry struct{ key, value *yaml.Node }

// entries lists the keys and values of mapping n the way yaml decodes
// them: n's own, then those merged into it (<<: *base) that n does not
// give itself, the first merged mapping winning. A key n gives twice is
// reported and taken out of n, so that yaml decodes the rest of it.
func (ck *checker) entries(n *yaml.Node, field string) []entry {
	var own []entry
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	var merge *yaml.Node
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if first, ok := seen[k.Value]; ok {
			ck.add(k, join(field, k.Value), "given twice, first at line %d", first.Line)
			ck.dropped = true
			continue
		}
		seen[k.Value] = k
		kept = append(kept, k, v)
		if isMerge(k) {
			merge = resolve(v)
			continue
		}
		own = append(own, entry{k, v})
	}
	n.Content = kept
	if merge == nil {
		return own
	}
	bases := []*yaml.Node{merge}
	if merge.Kind == yaml.SequenceNode {
		bases = merge.Content
	}
	for _, b := range bases {
		// yaml refuses a merge of anything but mappings before the checker
		// runs.
		if b = resolve(b); b.Kind != yaml.MappingNode {
			continue
		}
		for _, e := range ck.entries(b, field) {
			if _, ok := seen[e.key.Value]; !ok {
				seen[e.key.Value] = e.key
				own = append(own, e)
			}
		}
	}
	return own
}

// yamlFields maps the keys of struct type t to their fields' types. The
// configuration's structs have no inline fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case !f.IsExported() || name == "-":
			continue
		case name == "":
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// after reports whether e follows from one of bad, the values decode could
// not take: a mistake Validate finds in the same field or under it (a
// max_clusters out of range decodes as 0, which Validate refuses too).
func after(e *FieldError, bad []*FieldError) bool {
	for _, b := range bad {
		if b.Pool != e.Pool {
			continue
		}
		if b.Field == "" || e.Field == b.Field ||
			strings.HasPrefix(e.Field, b.Field+".") || strings.HasPrefix(e.Field, b.Field+"[") {
			return true
		}
	}
	return false
}
