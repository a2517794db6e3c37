package lint

import (
	"fmt"
	"path/filepath"
	"strings"
)

// listKeys are settings systemd accumulates: writing them twice is normal.
// Any other setting written twice in a section is overridden by the last.
var listKeys = map[string]bool{
	"After": true, "Before": true, "Wants": true, "Requires": true, "Requisite": true, "BindsTo": true,
	"PartOf": true, "Upholds": true, "Conflicts": true, "OnFailure": true, "OnSuccess": true,
	"Documentation": true, "WantedBy": true, "RequiredBy": true, "UpheldBy": true, "Also": true, "Alias": true,
	"Environment": true, "EnvironmentFile": true, "PassEnvironment": true, "UnsetEnvironment": true,
	"ExecStartPre": true, "ExecStartPost": true, "ExecCondition": true, "ExecReload": true, "ExecStop": true, "ExecStopPost": true,
	"ReadWritePaths": true, "ReadOnlyPaths": true, "InaccessiblePaths": true, "ExecPaths": true, "NoExecPaths": true,
	"BindPaths": true, "BindReadOnlyPaths": true, "TemporaryFileSystem": true, "SupplementaryGroups": true,
	"CapabilityBoundingSet": true, "AmbientCapabilities": true, "DeviceAllow": true, "SystemCallFilter": true,
	"RestrictAddressFamilies": true, "IPAddressAllow": true, "IPAddressDeny": true, "LoadCredential": true,
	"SetCredential": true, "LogExtraFields": true, "RequiresMountsFor": true, "WantsMountsFor": true,
	"ExecStart": true, // checked on its own below
}

// lintUnit checks a systemd unit, and returns the config files it names so
// they are linted too.
func lintUnit(name string, data []byte) ([]Finding, []string) {
	u, syntax := ParseUnit(data)
	var out []Finding
	add := func(rule string, sev Severity, line int, key, fix, format string, args ...any) {
		out = append(out, Finding{Rule: rule, Severity: sev, File: name, Line: line, Key: key, Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	for _, e := range syntax {
		add(RuleUnitSyntax, Error, e.Line, "", "", "%s", e.Msg)
	}

	// Sections and settings written twice.
	firstSection := map[string]int{}
	for _, s := range u.Sections {
		if prev, dup := firstSection[s.Name]; dup {
			add(RuleUnitDuplicateSection, Warning, s.Line, "["+s.Name+"]", "merge it into the first one",
				"[%s] appears again (first on line %d); systemd merges them, so a setting in both is overridden silently", s.Name, prev)
		} else {
			firstSection[s.Name] = s.Line
		}
	}
	for _, secName := range sectionNames(u) {
		seen := map[string]Entry{}
		for _, s := range u.Sections {
			if s.Name != secName {
				continue
			}
			for _, e := range s.Entries {
				prev, dup := seen[e.Key]
				seen[e.Key] = e
				if !dup || listKeys[e.Key] || prev.Value == "" {
					continue
				}
				if prev.Value == e.Value {
					add(RuleUnitDuplicateKey, Warning, e.Line, e.Key+"=", "delete one", "%s=%s is written twice (also on line %d)", e.Key, e.Value, prev.Line)
				} else {
					add(RuleUnitDuplicateKey, Warning, e.Line, e.Key+"=", "keep the one you mean",
						"%s= is set twice: %s=%s here overrides %s=%s on line %d", e.Key, e.Key, e.Value, e.Key, prev.Value, prev.Line)
				}
			}
		}
	}

	typ, _ := u.Value("Service", "Type")
	execs := effectiveExecStart(u.Values("Service", "ExecStart"))
	if len(execs) > 1 && typ.Value != "oneshot" {
		add(RuleUnitMultipleExec, Error, execs[1].Line, "ExecStart=", "keep one ExecStart=",
			"more than one ExecStart= (line %d and %d): systemd refuses to start a service that is not Type=oneshot with that", execs[0].Line, execs[1].Line)
	}

	// A unit that conflicts with itself: starting it stops it.
	self := filepath.Base(name)
	selves := map[string]bool{self: true}
	if !strings.Contains(self, ".") {
		selves[self+".service"] = true
	}
	for _, a := range u.Values("Install", "Alias") {
		for _, w := range strings.Fields(a.Value) {
			selves[w] = true
		}
	}
	for _, e := range u.Values("Unit", "Conflicts") {
		for _, w := range strings.Fields(e.Value) {
			if selves[w] || selves[w+".service"] {
				add(RuleUnitConflictsSelf, Error, e.Line, "Conflicts=", "remove "+w+" from Conflicts=",
					"%s conflicts with itself: starting it queues a stop of itself", w)
			}
		}
	}

	var refs []string
	runsEtcd := false
	for _, e := range u.Values("Service", "EnvironmentFile") {
		if p := strings.TrimPrefix(e.Value, "-"); p != "" {
			refs = append(refs, p)
		}
	}
	if len(execs) > 0 {
		exec := execs[len(execs)-1]
		argv := unitWords(strings.TrimLeft(exec.Value, "@-:+!"))
		runsEtcd = mentionsEtcd(argv)
		for i, a := range argv {
			switch {
			case (a == "--config" || a == "--config-file") && i+1 < len(argv):
				refs = append(refs, argv[i+1])
			case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "--config-file="):
				refs = append(refs, a[strings.Index(a, "=")+1:])
			}
		}
		notifyAccess, _ := u.Value("Service", "NotifyAccess")
		if typ.Value == "notify" {
			if sev, msg, fix := notifyWrapper(argv, notifyAccess.Value); msg != "" {
				add(RuleUnitNotifyWrapper, sev, exec.Line, "ExecStart=", fix, "%s", msg)
			}
		}
	}
	if runsEtcd {
		if typ.Value != "notify" {
			line, shown := typ.Line, "Type="+typ.Value
			if typ.Value == "" {
				shown, line = "Type=", firstSection["Service"]
			}
			add(RuleUnitNotNotify, Warning, line, "Type=", "set Type=notify: etcd and etcdkit member run report READY=1 once the member serves",
				"%s: systemctl start returns, and units ordered after this one start, before the member serves clients", strings.TrimSuffix(shown, "="))
		}
		restart, ok := u.Value("Service", "Restart")
		if !ok || restart.Value == "no" {
			line := restart.Line
			if !ok {
				line = firstSection["Service"]
			}
			add(RuleUnitNoRestart, Warning, line, "Restart=", "set Restart=on-failure", "a member that crashes stays down, and the cluster runs one failure closer to losing quorum")
		}
	}
	return out, refs
}

func sectionNames(u *Unit) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range u.Sections {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s.Name)
		}
	}
	return out
}

// effectiveExecStart drops assignments an empty ExecStart= reset (the
// drop-in override idiom).
func effectiveExecStart(all []Entry) []Entry {
	var out []Entry
	for _, e := range all {
		if e.Value == "" {
			out = nil
			continue
		}
		out = append(out, e)
	}
	return out
}

func mentionsEtcd(argv []string) bool {
	for _, a := range argv {
		base := filepath.Base(a)
		if base == "etcd" || base == "etcdkit" || strings.Contains(a, "/etcd ") || strings.Contains(a, "etcd --") || strings.Contains(a, "bin/etcd") {
			return true
		}
	}
	return false
}

var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "ash": true, "zsh": true, "ksh": true, "busybox": true}

// notifyWrapper finds an ExecStart that keeps etcd's READY=1 from reaching
// systemd. With the default NotifyAccess=main systemd accepts it only from
// the process it started; a wrapper that forks makes etcd a child, and one
// that resets the environment drops NOTIFY_SOCKET altogether. Either way
// the unit never becomes active and is killed at its start timeout.
func notifyWrapper(argv []string, notifyAccess string) (Severity, string, string) {
	if len(argv) == 0 {
		return "", "", ""
	}
	base := filepath.Base(argv[0])
	direct := "run the binary itself in ExecStart= (ExecStart=/usr/local/bin/etcd, or etcdkit member run --config FILE)"
	switch {
	case shells[base]:
		script := ""
		for i, a := range argv {
			if a == "-c" && i+1 < len(argv) {
				script = argv[i+1]
			}
		}
		if script == "" || notifyAccess == "all" {
			return "", "", ""
		}
		last := strings.TrimSpace(lastCommand(script))
		switch {
		case forks(script):
			return Error, fmt.Sprintf("Type=notify, but %s -c runs etcd in a pipeline or in the background: etcd is a child of the shell and systemd ignores its READY=1 (NotifyAccess=main), so the start times out", base),
				"write exec before the command, or " + direct
		case strings.HasPrefix(last, "exec "):
			return "", "", ""
		default:
			return Warning, fmt.Sprintf("Type=notify through %s -c without exec: READY=1 reaches systemd only if this shell replaces itself with etcd, which bash does for one simple command and other shells may not", base),
				"write exec before the command, or " + direct
		}
	case base == "sudo" || base == "su" || base == "runuser" || base == "doas":
		return Error, fmt.Sprintf("Type=notify through %s: it resets the environment, so etcd never sees NOTIFY_SOCKET and the start times out", base),
			"use User= and Group= in the unit instead, and " + direct
	case base == "env":
		for i, a := range argv {
			if a == "-i" || a == "--ignore-environment" || a == "-" || ((a == "-u" || a == "--unset") && i+1 < len(argv) && argv[i+1] == "NOTIFY_SOCKET") || a == "--unset=NOTIFY_SOCKET" {
				return Error, "Type=notify through env that clears the environment: etcd never sees NOTIFY_SOCKET and the start times out",
					"keep NOTIFY_SOCKET (set variables with Environment= instead), or " + direct
			}
		}
	case base == "setsid" || base == "daemonize" || base == "start-stop-daemon" || base == "nohup" && len(argv) > 1 && argv[len(argv)-1] == "&":
		return Error, fmt.Sprintf("Type=notify through %s, which forks: etcd is not the process systemd watches, so its READY=1 is ignored", base), direct
	case base == "docker" || base == "nerdctl" || base == "ctr":
		return Error, fmt.Sprintf("Type=notify through %s: the container cannot reach NOTIFY_SOCKET, so the unit never becomes active", base),
			"use Type=simple for a container, or " + direct
	}
	return "", "", ""
}

// lastCommand is the last command of a shell script (after ; && || or a
// newline).
func lastCommand(script string) string {
	last := script
	for _, sep := range []string{"\n", ";", "&&", "||"} {
		if i := strings.LastIndex(last, sep); i >= 0 {
			last = last[i+len(sep):]
		}
	}
	return last
}

// forks reports a pipeline or a background job in a shell script.
func forks(script string) bool {
	s := strings.NewReplacer("&&", "", "||", "", ">&", "", "&>", "", "<&", "").Replace(script)
	return strings.Contains(s, "|") || strings.Contains(s, "&")
}
