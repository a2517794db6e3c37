package lint

import "github.com/etcdkit/etcdkit/internal/etcdconf"

// Rule ids of the checks only lint makes; the config checks it shares with
// `member run` have their ids in etcdconf.
const (
	RuleCertSANMismatch  = "cert-san-mismatch"
	RuleStateNewWithData = "state-new-with-data"
	RuleEnvDuplicate     = "env-duplicate"
	RuleEnvInlineComment = "env-inline-comment"

	RuleUnitSyntax           = "unit-syntax"
	RuleUnitDuplicateSection = "unit-duplicate-section"
	RuleUnitDuplicateKey     = "unit-duplicate-key"
	RuleUnitMultipleExec     = "unit-multiple-execstart"
	RuleUnitConflictsSelf    = "unit-conflicts-self"
	RuleUnitNotifyWrapper    = "unit-notify-wrapper"
	RuleUnitNotNotify        = "unit-not-notify"
	RuleUnitNoRestart        = "unit-no-restart"

	RulePodNoEtcd = "pod-no-etcd"
)

// Rule describes one check.
type Rule struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Applies  string   `json:"appliesTo"`
	What     string   `json:"what"`
}

const cfg = "env, etcd-yaml, static-pod"

// Rules lists every check lint makes, for `config lint --rules` and the
// docs. Severity is the usual one; a few rules report either.
func Rules() []Rule {
	return []Rule{
		{etcdconf.RuleSyntax, Error, "all", "the file cannot be read as what it looks like"},
		{etcdconf.RuleUnknownKey, Error, cfg, "an ETCD_* variable, YAML key or flag etcd does not know (a typo), with a did-you-mean"},
		{etcdconf.RuleRemoved, Error, cfg, "a setting of etcd 2, 3.4 or earlier that etcd 3.7 ignores or refuses (ETCD_ENABLE_V2, ETCD_CA_FILE, experimental flags)"},
		{etcdconf.RuleUnsupported, Error, cfg, "an etcd flag with no config-file key, which etcdkit cannot apply"},
		{etcdconf.RuleInvalidValue, Error, cfg, "a value of the wrong type"},
		{etcdconf.RuleRequired, Error, cfg, "a setting every member needs is missing"},
		{etcdconf.RuleInvalidURL, Error, cfg, "a URL etcd would refuse"},
		{etcdconf.RuleHTTPSWithoutCert, Error, cfg, "an https URL without a certificate"},
		{etcdconf.RuleHTTPNonLoopback, Error, cfg, "a plain http:// URL on a non-loopback address"},
		{etcdconf.RuleHTTPLoopback, Warning, cfg, "a plain http:// URL on loopback: any local process reads every key without a certificate"},
		{etcdconf.RuleInitialCluster, Error, cfg, "initial-cluster does not parse"},
		{etcdconf.RuleInitialClusterSelf, Error, cfg, "initial-cluster lacks this member's name and advertised peer URL"},
		{etcdconf.RuleClusterState, Error, cfg, "initial-cluster-state is neither new nor existing"},
		{etcdconf.RuleEvenMembers, Warning, cfg, "an even member count"},
		{etcdconf.RuleElectionTimeout, Error, cfg, "election timeout under 5 x heartbeat interval or above 50 s"},
		{etcdconf.RuleQuota, Error, cfg, "quota-backend-bytes outside etcd's limits"},
		{etcdconf.RuleCompaction, Error, cfg, "auto-compaction-mode is neither periodic nor revision"},
		{etcdconf.RuleForceNewCluster, Error, cfg, "force-new-cluster kept in a config"},
		{etcdconf.RuleAutoTLSWithCerts, Error, cfg, "AUTO_TLS or PEER_AUTO_TLS beside certificate files: etcd ignores the certificates"},
		{etcdconf.RuleAutoTLS, Warning, cfg, "self-signed certificates without client authentication"},
		{etcdconf.RuleCertKeyPair, Error, cfg, "a certificate without its key, or a key without its certificate"},
		{etcdconf.RuleCertAuthOff, Warning, cfg, "client or peer certificate authentication off while TLS is on"},
		{etcdconf.RuleTrustedCA, Error, cfg, "client-cert-auth without a trusted CA file"},
		{etcdconf.RuleMissingFile, Error, cfg, "a certificate, key or CA file that does not exist"},
		{etcdconf.RuleKeyPermissions, Error, cfg, "a private key readable by group or others"},
		{RuleCertSANMismatch, Error, cfg, "an advertised or listen address the certificate does not cover (when the certificate is readable)"},
		{RuleStateNewWithData, Warning, cfg, "initial-cluster-state new on a member that already has data"},
		{RuleEnvDuplicate, Warning, "env", "a variable set twice"},
		{RuleEnvInlineComment, Warning, "env", "a # comment after a value, which becomes part of the value"},
		{RuleUnitSyntax, Error, "systemd-unit", "a line systemd ignores"},
		{RuleUnitDuplicateSection, Warning, "systemd-unit", "a section written twice"},
		{RuleUnitDuplicateKey, Warning, "systemd-unit", "a single-valued setting written twice: the last one wins"},
		{RuleUnitMultipleExec, Error, "systemd-unit", "more than one ExecStart= in a service that is not Type=oneshot: systemd refuses it"},
		{RuleUnitConflictsSelf, Error, "systemd-unit", "Conflicts= naming the unit itself"},
		{RuleUnitNotifyWrapper, Error, "systemd-unit", "Type=notify with an ExecStart wrapper that loses the notify socket (a forking shell, sudo, env -i, ...)"},
		{RuleUnitNotNotify, Warning, "systemd-unit", "an etcd unit that is not Type=notify: systemctl start returns before the member serves"},
		{RuleUnitNoRestart, Warning, "systemd-unit", "an etcd unit that is not restarted after a crash"},
		{RulePodNoEtcd, Error, "static-pod", "a Pod manifest without an etcd container"},
	}
}
