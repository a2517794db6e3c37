// Command report runs the robustness suite and writes docs/reliability.md
// from its results:
//
//	go run ./test/robustness/cmd/report                 # every scenario and size, 3 seeds
//	go run ./test/robustness/cmd/report -quick          # the quick set, 1 seed
//	go run ./test/robustness/cmd/report -run partition  # scenarios whose name matches
//	go run ./test/robustness/cmd/report -render         # re-render from the kept results
//
// It runs `go test` on the suite (the scenarios need the test binary's
// helpers) with ETCDKIT_ROBUSTNESS_RESULTS set, keeps the raw results
// beside the report (docs/reliability.jsonl), then renders them. It exits
// 1 when any run found a violation; the report is written anyway.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/test/robustness"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, log io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(log)
	quick := fs.Bool("quick", false, "run only the quick set (3 members, 1 seed) instead of every scenario, size and 3 seeds")
	seeds := fs.String("seeds", "", "comma-separated seeds (default 1,2,3; with -quick 1)")
	filter := fs.String("run", "", "only scenarios whose name matches this regular expression")
	out := fs.String("out", "docs/reliability.md", "the report to write, relative to the module root")
	resultsFile := fs.String("results", "docs/reliability.jsonl", "where the raw results (JSON lines) are kept, relative to the module root")
	renderOnly := fs.Bool("render", false, "do not run anything: render the report from the kept results")
	timeout := fs.Duration("timeout", 3*time.Hour, "go test's -timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(log, "report takes no arguments; got %q\n", fs.Args())
		return 2
	}
	if *filter != "" {
		if _, err := regexp.Compile(*filter); err != nil {
			fmt.Fprintf(log, "invalid value %q for flag -run: %v\n", *filter, err)
			return 2
		}
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(log, err)
		return 1
	}
	results := filepath.Join(root, *resultsFile)
	mode := "full"
	if *quick {
		mode = "quick"
	}
	var testErr error
	began := time.Now()
	if !*renderOnly {
		if err := os.WriteFile(results, nil, 0o644); err != nil {
			fmt.Fprintln(log, err)
			return 1
		}
		testErr = runSuite(root, mode, *filter, *seeds, results, *timeout, log)
	}
	rs, err := robustness.ReadResults(results)
	if err != nil {
		fmt.Fprintf(log, "no results: %v (go test: %v)\n", err, testErr)
		return 1
	}
	info := robustness.ReportInfo{Command: strings.TrimSpace("go run ./test/robustness/cmd/report " + strings.Join(args, " ")),
		Mode: mode, Date: time.Now(), Machine: machine(), Duration: time.Since(began)}
	if *renderOnly {
		info = reportInfoOf(rs, info)
	}
	md := robustness.Markdown(rs, info)
	path := filepath.Join(root, *out)
	if err := fsutil.WriteFile(path, md, fsutil.PublicFile); err != nil {
		fmt.Fprintln(log, err)
		return 1
	}
	bad := 0
	for _, r := range rs {
		if !r.OK() {
			bad++
		}
	}
	fmt.Fprintf(log, "wrote %s: %d runs, %d with violations\n", path, len(rs), bad)
	if testErr != nil || bad > 0 {
		return 1
	}
	return 0
}

// runSuite runs the scenarios with go test, appending each result to
// results.
func runSuite(root, mode, filter, seeds, results string, timeout time.Duration, log io.Writer) error {
	pattern := "^TestScenarios$"
	if filter != "" {
		pattern += "/" + filter
	}
	goArgs := []string{"test", "./test/robustness/", "-run", pattern, "-count=1", "-timeout", timeout.String(), "-v"}
	cmd := exec.Command("go", goArgs...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), robustness.EnvMode+"="+mode, robustness.EnvResults+"="+results)
	if seeds != "" {
		cmd.Env = append(cmd.Env, robustness.EnvSeeds+"="+seeds)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	fmt.Fprintf(log, "running: %s=%s go %s\n", robustness.EnvMode, mode, strings.Join(goArgs, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	progress(stdout, log)
	return cmd.Wait()
}

// reportInfoOf describes a re-rendered run from its results.
func reportInfoOf(rs []robustness.Result, info robustness.ReportInfo) robustness.ReportInfo {
	var first, last time.Time
	for _, r := range rs {
		if first.IsZero() || r.Started.Before(first) {
			first = r.Started
		}
		if end := r.Started.Add(time.Duration(r.Duration)); end.After(last) {
			last = end
		}
		info.Mode = r.Mode
	}
	info.Command = "go run ./test/robustness/cmd/report (rendered again with -render)"
	info.Date, info.Duration = last, last.Sub(first)
	return info
}

// progress passes on the lines of go test's output that say where it is.
func progress(r io.Reader, log io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "=== RUN") && strings.Count(t, "/") == 3 {
			fmt.Fprintln(log, t)
		} else if strings.HasPrefix(t, "--- ") || strings.HasPrefix(t, "ok ") || strings.HasPrefix(t, "FAIL") ||
			strings.HasPrefix(t, "panic") || strings.Contains(l, "violations:") || strings.Contains(l, "problem:") {
			fmt.Fprintln(log, l)
		}
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the report from inside the etcdkit module")
	}
	return filepath.Dir(mod), nil
}

// machine describes where the report ran: the numbers mean little
// without it.
func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	s := fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if cpu != "" {
		s += " (" + cpu + ")"
	}
	return s + ", " + runtime.Version()
}
