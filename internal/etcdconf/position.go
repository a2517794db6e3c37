package etcdconf

import (
	"strconv"

	yamlv3 "go.yaml.in/yaml/v3"
)

// origin records where each key of a config was set, so every message
// names the line, and for an environment file the variable, the operator
// wrote.
type origin struct {
	env bool
	// flags: read from a command line; keys are shown as --flag.
	flags bool
	keys  map[string]position
}

type position struct {
	Line int
	// Name is what the operator wrote: the ETCD_* variable, the --flag or
	// the YAML key.
	Name string
}

// locate is the line and the name to report for a key ("a.b").
func (c *Config) locate(key string, src []byte) (int, string) {
	if c != nil && c.origin != nil {
		if p, ok := c.origin.keys[key]; ok {
			return p.Line, p.Name
		}
		if c.origin.env {
			if f := KeyFlag(key); f != "" {
				if c.origin.flags {
					return 0, "--" + f
				}
				return 0, EnvName(f)
			}
			return 0, key
		}
		// The YAML positions are exact: a key not among them is not set.
		return 0, key
	}
	return LineOf(src, key), key
}

// DisplayKey is how messages name a config-file key for this config: the
// ETCD_* variable for a config read from an environment file.
func (c *Config) DisplayKey(key string) string {
	_, name := c.locate(key, nil)
	return name
}

// IsEnv reports whether the config was read from an environment file.
func (c *Config) IsEnv() bool { return c != nil && c.origin != nil && c.origin.env }

// Line is the line a key was set on, or 0.
func (c *Config) Line(key string) int {
	l, _ := c.locate(key, nil)
	return l
}

// yamlPositions maps every key path of a YAML document ("a.b", "l[0]") to
// its line.
func yamlPositions(data []byte) map[string]position {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	out := map[string]position{}
	var walk func(n *yamlv3.Node, prefix string)
	walk = func(n *yamlv3.Node, prefix string) {
		switch n.Kind {
		case yamlv3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := k.Value
				if prefix != "" {
					path = prefix + "." + k.Value
				}
				if _, seen := out[path]; !seen {
					out[path] = position{Line: k.Line, Name: path}
				}
				walk(v, path)
			}
		case yamlv3.SequenceNode:
			for i, v := range n.Content {
				path := prefix + "[" + strconv.Itoa(i) + "]"
				out[path] = position{Line: v.Line, Name: path}
				walk(v, path)
			}
		}
	}
	walk(doc.Content[0], "")
	return out
}

// YAMLLines maps every key path of a YAML document ("a.b", "l[0].c") to
// the line it is on; other packages use it to point at what they report.
func YAMLLines(data []byte) map[string]int {
	out := map[string]int{}
	for k, p := range yamlPositions(data) {
		out[k] = p.Line
	}
	return out
}
