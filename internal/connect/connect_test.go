package connect

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestResolvePrecedence(t *testing.T) {
	env := Env(func(k string) string {
		return map[string]string{
			"ETCDCTL_ENDPOINTS":    "https://env:2379, https://env2:2379",
			"ETCDCTL_CACERT":       "/env/ca.pem",
			"ETCDCTL_CERT":         "/env/client.pem",
			"ETCDCTL_KEY":          "/env/client-key.pem",
			"ETCDCTL_DIAL_TIMEOUT": "7s",
		}[k]
	})
	src := Source{Name: "dir", Find: func() (Settings, bool, error) {
		return Settings{Endpoints: []string{"https://dir:2379"}, CACert: "/dir/ca.pem"}, true, nil
	}}

	// Flags win field by field; the environment fills the rest.
	tg, err := Resolve(Settings{Endpoints: []string{"flag:2379"}, CACert: "/flag/ca.pem"}, env, src)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tg.Endpoints, []string{"https://flag:2379"}) || tg.CACert != "/flag/ca.pem" || tg.Cert != "/env/client.pem" {
		t.Fatalf("got %+v", tg.Settings)
	}
	if tg.DialTimeout != 7*time.Second || tg.CommandTimeout != DefaultCommandTimeout {
		t.Fatalf("timeouts %v %v", tg.DialTimeout, tg.CommandTimeout)
	}
	if !reflect.DeepEqual(tg.Source, []string{"flags", "environment (ETCDCTL_*)"}) {
		t.Fatalf("source %v", tg.Source)
	}

	// Nothing given: the first source that finds something is used.
	tg, err = Resolve(Settings{}, Settings{}, Source{Name: "empty", Find: func() (Settings, bool, error) { return Settings{}, false, nil }}, src)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Endpoints[0] != "https://dir:2379" || !reflect.DeepEqual(tg.Source, []string{"dir"}) {
		t.Fatalf("got %+v", tg)
	}
}

func TestResolveErrors(t *testing.T) {
	_, err := Resolve(Settings{}, Settings{})
	if !errors.Is(err, ErrNoEndpoints) {
		t.Fatalf("want ErrNoEndpoints, got %v", err)
	}
	broken := errors.New("bad manifest")
	_, err = Resolve(Settings{}, Settings{}, Source{Name: "kubeadm", Find: func() (Settings, bool, error) { return Settings{}, false, broken }})
	if !errors.Is(err, broken) || err.Error() != "kubeadm: bad manifest" {
		t.Fatalf("got %v", err)
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		tls  bool
		want string
	}{
		{"10.0.0.1:2379", true, "https://10.0.0.1:2379"},
		{"10.0.0.1:2379", false, "http://10.0.0.1:2379"},
		{"https://a:1", false, "https://a:1"},
	} {
		if got := normalizeEndpoint(tc.in, tc.tls); got != tc.want {
			t.Errorf("%q tls=%v: %q, want %q", tc.in, tc.tls, got, tc.want)
		}
	}
}

func TestTLSNeedsCertAndKeyTogether(t *testing.T) {
	tg := &Target{Settings: Settings{Endpoints: []string{"https://a:1"}, Cert: "/c.pem"}}
	if _, err := tg.TLS(); err == nil || err.Error() != "--cert and --key must be given together" {
		t.Fatalf("got %v", err)
	}
}
