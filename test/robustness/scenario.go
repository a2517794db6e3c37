package robustness

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/etcdkit/etcdkit/internal/testutil"
)

// Scenario is one fault, or one etcdkit operation, run against a cluster
// under traffic. A scenario is a small file (scenario_NAME.go) whose init
// calls Register; the suite runs every registered scenario, checks each
// history and adds a row to docs/reliability.md. Scenario.Run only has to
// inject its fault or run its operation and bring the cluster back to
// health: traffic, recording, watching, the checks and the final
// verification (etcdkit health, HashKV agreement) are the suite's.
type Scenario struct {
	// Name is the scenario's id: lower-case words joined by dashes.
	Name string
	// Summary says in one line what happens, for the report.
	Summary string
	// Sizes are the cluster sizes it runs against; default {3}.
	Sizes []int
	// Quick puts the scenario in the quick run inside `go test ./...`
	// (smallest size, first seed only). Keep quick scenarios short.
	Quick bool
	// Cluster, when set, shapes the cluster (peer proxies, quotas,
	// config edits) before it starts.
	Cluster func(o *ClusterOptions)
	// Skip, when set, returns why the scenario cannot run here ("" when
	// it can): not root, no tmpfs, a command that does not exist yet
	// (NeedsCommand).
	Skip func(t testing.TB) string
	// Run injects the fault while traffic runs and returns once the
	// cluster has recovered. It fails through e.T.
	Run func(e *Env)
}

var (
	registryMu sync.Mutex
	registry   = map[string]Scenario{}
	nameRE     = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// Register adds a scenario. It panics on a malformed or duplicate one, so
// a mistake shows the moment the test binary starts.
func Register(s Scenario) {
	registryMu.Lock()
	defer registryMu.Unlock()
	switch {
	case !nameRE.MatchString(s.Name):
		panic(fmt.Sprintf("robustness: scenario name %q: use lower-case words joined by dashes", s.Name))
	case s.Summary == "" || s.Run == nil:
		panic(fmt.Sprintf("robustness: scenario %q needs a Summary and a Run", s.Name))
	}
	if _, dup := registry[s.Name]; dup {
		panic(fmt.Sprintf("robustness: scenario %q registered twice", s.Name))
	}
	if len(s.Sizes) == 0 {
		s.Sizes = []int{3}
	}
	s.Sizes = slices.Clone(s.Sizes)
	slices.Sort(s.Sizes)
	registry[s.Name] = s
}

// Scenarios lists the registered scenarios by name.
func Scenarios() []Scenario {
	registryMu.Lock()
	defer registryMu.Unlock()
	out := make([]Scenario, 0, len(registry))
	for _, s := range registry {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NeedsCommand is a Skip for scenarios that drive an etcdkit command built
// by another change: until `etcdkit ARGS... --help` documents that very
// command, the scenario is skipped and the report says why.
func NeedsCommand(args ...string) func(t testing.TB) string {
	return func(t testing.TB) string {
		r := testutil.Run(t, nil, testutil.Etcdkit(t), append(args, "--help")...)
		path := "etcdkit " + strings.Join(args, " ")
		if r.Code != 0 || !strings.Contains(r.Stdout, path) {
			return fmt.Sprintf("`%s` does not exist in this build yet", path)
		}
		return ""
	}
}
