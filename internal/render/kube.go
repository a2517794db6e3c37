package render

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// What kubeadm writes into /etc/kubernetes/manifests/etcd.yaml, so that
// kubeadm's own phases (upgrade, join, reset) and `etcdkit kubeadm
// discover` recognise the pod.
const (
	// AdvertiseClientURLsAnnotation is how kubeadm finds a member's client
	// URL from its pod.
	AdvertiseClientURLsAnnotation = "kubeadm.kubernetes.io/etcd.advertise-client-urls"
	// MetricsPort serves /livez, /readyz and /metrics over plain HTTP on
	// loopback, for the kubelet's probes.
	MetricsPort       = 2381
	systemNodeCritial = "system-node-critical"
	// kubeadm waits 4 minutes for a control plane component to start.
	startupSeconds = 240
)

// StaticPod is a kubeadm-style static pod manifest running stock etcd for
// member m: hostNetwork, system-node-critical, the data and certificate
// directories mounted at the same paths as on the host, probes on the
// metrics listener, and --initial-cluster-state new or existing as the
// options say (a joining member needs existing, with the live member list
// as InitialCluster).
func StaticPod(c *spec.Cluster, m *spec.Member, o Options) ([]byte, error) {
	o = o.withDefaults()
	cfg, err := EtcdConfig(c, m, o.EtcdOptions)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(m.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("clientURL: %w", err)
	}
	loopback := "127.0.0.1"
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.To4() == nil {
		loopback = "::1"
	}
	if cfg.ListenMetricsURLs == "" {
		cfg.ListenMetricsURLs = "http://" + net.JoinHostPort(loopback, strconv.Itoa(MetricsPort))
	}
	// etcdkit's own settings (scheduled backups) need `etcdkit member run`;
	// stock etcd in the pod would ignore them.
	cfg.Etcdkit = nil
	settings, err := cfg.Settings()
	if err != nil {
		return nil, err
	}
	// What kubeadm adds beyond the member's config: corruption checks at
	// start, and progress notifications the API server's watch cache needs.
	args := map[string]string{
		"feature-gates":                  "InitialCorruptCheck=true",
		"watch-progress-notify-interval": "5s",
	}
	for _, s := range settings {
		args[s.Flag] = s.Value
	}
	names := make([]string, 0, len(args))
	for n := range args {
		names = append(names, n)
	}
	sort.Strings(names)
	command := []string{"etcd"}
	for _, n := range names {
		command = append(command, fmt.Sprintf("--%s=%s", n, args[n]))
	}

	dataDir, pkiDir := c.MemberDataDir(m), c.MemberPKIDir(m)
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	probe := func(path string, initialDelay, failures, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Host: loopback, Path: path, Port: intstr.FromInt32(MetricsPort), Scheme: corev1.URISchemeHTTP,
			}},
			InitialDelaySeconds: initialDelay,
			TimeoutSeconds:      15,
			FailureThreshold:    failures,
			PeriodSeconds:       period,
		}
	}
	priority := int32(2000001000) // system-node-critical's value
	pod := corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        "etcd",
			Namespace:   metav1.NamespaceSystem,
			Labels:      map[string]string{"component": "etcd", "tier": "control-plane"},
			Annotations: map[string]string{AdvertiseClientURLsAnnotation: m.ClientURL},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "etcd",
				Image:           o.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         command,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("100m"),
					corev1.ResourceMemory: resource.MustParse("100Mi"),
				}},
				// /livez fails only when this member is broken; /readyz also
				// when it cannot serve (no leader), which must not restart it.
				LivenessProbe:  probe("/livez", 10, 8, 10),
				ReadinessProbe: probe("/readyz", 0, 3, 1),
				StartupProbe:   probe("/readyz", 10, startupSeconds/10, 10),
				VolumeMounts: []corev1.VolumeMount{
					{Name: "etcd-data", MountPath: dataDir},
					{Name: "etcd-certs", MountPath: pkiDir, ReadOnly: true},
				},
			}},
			HostNetwork:       true,
			Priority:          &priority,
			PriorityClassName: systemNodeCritial,
			SecurityContext: &corev1.PodSecurityContext{
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Volumes: []corev1.Volume{
				{Name: "etcd-certs", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: pkiDir, Type: &dirOrCreate}}},
				{Name: "etcd-data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dataDir, Type: &dirOrCreate}}},
			},
		},
	}
	body, err := yaml.Marshal(pod)
	if err != nil {
		return nil, err
	}
	h := append(header(c, m, "kubeadm-style static pod", o),
		"Install as /etc/kubernetes/manifests/etcd.yaml; the kubelet starts it.",
		fmt.Sprintf("initial-cluster-state %s: %s", o.State, stateNote(o.State)))
	return append([]byte(comment(h)), body...), nil
}

func stateNote(s ClusterState) string {
	if s == StateExisting {
		return "this member joins a running cluster (add it first with `etcdkit member add`)."
	}
	return "every member listed in initial-cluster starts together as a new cluster."
}

// clientPair is the CA and client certificate a kube-apiserver uses to
// reach the cluster: kubeadm's apiserver-etcd-client, or cfssl's client.
func clientPair(c *spec.Cluster) (ca string, client pki.Pair, err error) {
	layout, err := pki.ParseLayout(c.PKI.Layout)
	if err != nil {
		return "", pki.Pair{}, err
	}
	ca = layout.CA(c.PKI.Dir).Cert
	if layout == pki.LayoutKubeadm {
		return ca, pki.APIServerClient(c.PKI.Dir), nil
	}
	return ca, layout.Leaf(c.PKI.Dir, pki.RoleClient), nil
}

// APIServerFlags are kube-apiserver's flags for an external etcd cluster.
func APIServerFlags(c *spec.Cluster, o Options) ([]byte, error) {
	ca, client, err := clientPair(c)
	if err != nil {
		return nil, err
	}
	h := append(header(c, nil, "kube-apiserver flags", o),
		"Add them to kube-apiserver's command (/etc/kubernetes/manifests/kube-apiserver.yaml),",
		"replacing any --etcd-* flags there; the client certificate must be on every API server host.")
	var b strings.Builder
	b.WriteString(comment(h))
	fmt.Fprintf(&b, "--etcd-servers=%s\n", strings.Join(c.ClientURLs(), ","))
	fmt.Fprintf(&b, "--etcd-cafile=%s\n", ca)
	fmt.Fprintf(&b, "--etcd-certfile=%s\n", client.Cert)
	fmt.Fprintf(&b, "--etcd-keyfile=%s\n", client.Key)
	return []byte(b.String()), nil
}

// kubeadmConfig is the part of kubeadm's ClusterConfiguration we write.
type kubeadmConfig struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Etcd       kubeadmEtcd `json:"etcd"`
}

type kubeadmEtcd struct {
	External kubeadmExternal `json:"external"`
}

type kubeadmExternal struct {
	Endpoints []string `json:"endpoints"`
	CAFile    string   `json:"caFile"`
	CertFile  string   `json:"certFile"`
	KeyFile   string   `json:"keyFile"`
}

// KubeadmExternal is a kubeadm ClusterConfiguration whose etcd.external
// block points at this cluster; merge it into the kubeadm config.
func KubeadmExternal(c *spec.Cluster, o Options) ([]byte, error) {
	ca, client, err := clientPair(c)
	if err != nil {
		return nil, err
	}
	body, err := yaml.Marshal(kubeadmConfig{
		APIVersion: "kubeadm.k8s.io/v1beta4",
		Kind:       "ClusterConfiguration",
		Etcd: kubeadmEtcd{External: kubeadmExternal{
			Endpoints: c.ClientURLs(), CAFile: ca, CertFile: client.Cert, KeyFile: client.Key,
		}},
	})
	if err != nil {
		return nil, err
	}
	h := append(header(c, nil, "kubeadm ClusterConfiguration (etcd.external)", o),
		"Merge into the ClusterConfiguration given to `kubeadm init --config`.")
	return append([]byte(comment(h)), body...), nil
}
