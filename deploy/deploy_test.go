// Package deploy holds the deployment files (Kubernetes manifests, compose
// helpers). Its test validates them, and the root docker-compose.yml and
// Dockerfile, since no Docker engine or cluster runs where CI does: files
// parse, names and images are set, every variable is one the program
// reads, every secret reference resolves.
package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wildix-export/wildix-export/config"
)

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func known(name string) bool {
	if slices.Contains(config.Variables(), name) {
		return true
	}
	return strings.HasPrefix(name, "POSTGRES_") // the postgres image's own
}

var commands = []string{"run", "backfill", "authorize", "check", "query", "demo", "endpoints", "config", "version"}

func TestCompose(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Image       string
			Build       any
			Command     []string
			Entrypoint  []string
			Profiles    []string
			Environment map[string]string
			Secrets     []string
			Volumes     []string
		}
		Secrets map[string]struct{ File string }
		Volumes map[string]any
	}
	readYAML(t, "../docker-compose.yml", &c)
	for _, name := range []string{"postgres", "worker", "pbxsim"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	if !slices.Contains(c.Services["pbxsim"].Profiles, "demo") || len(c.Services["worker"].Profiles) != 0 {
		t.Fatal("the simulator must be under the demo profile, the worker under none")
	}
	interp := regexp.MustCompile(`^\$\{[A-Z_]+:?-?(.*)\}$`)
	for name, s := range c.Services {
		if s.Image == "" {
			t.Errorf("service %s has no image", name)
		}
		for k := range s.Environment {
			if !known(k) {
				t.Errorf("service %s sets %s, which wildix-export does not read", name, k)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("service %s uses undeclared secret %s", name, sec)
			}
		}
		for _, v := range s.Volumes {
			if vol, _, _ := strings.Cut(v, ":"); !strings.HasPrefix(vol, ".") && !strings.HasPrefix(vol, "/") {
				if _, ok := c.Volumes[vol]; !ok {
					t.Errorf("service %s uses undeclared volume %s", name, vol)
				}
			}
		}
		if name == "worker" && (len(s.Command) == 0 || !slices.Contains(commands, s.Command[0])) {
			t.Errorf("worker command %v is not a wildix-export command", s.Command)
		}
	}
	for name, s := range c.Secrets {
		path := s.File
		if m := interp.FindStringSubmatch(path); m != nil {
			path = m[1]
		}
		if _, err := os.Stat(filepath.Join("..", path)); err != nil {
			t.Errorf("secret %s: default file %s: %v", name, path, err)
		}
	}
	if !slices.Contains(c.Services["postgres"].Volumes, "pgdata:/var/lib/postgresql/data") {
		t.Error("postgres keeps its data outside a named volume")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"sh .ci/build-static /out", "FROM gcr.io/distroless/static-debian12:nonroot", "USER nonroot", `ENTRYPOINT ["/usr/local/bin/wildix-export"]`} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

type container struct {
	Name    string
	Image   string
	Args    []string
	EnvFrom []struct {
		ConfigMapRef struct{ Name string } `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string
		Value     string
		ValueFrom struct {
			SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	Resources struct {
		Requests map[string]string
		Limits   map[string]string
	}
}

type podSpec struct {
	RestartPolicy string `yaml:"restartPolicy"`
	Containers    []container
}

func TestKubernetes(t *testing.T) {
	var secret struct {
		Kind       string
		Metadata   struct{ Name string }
		StringData map[string]string `yaml:"stringData"`
	}
	readYAML(t, "kubernetes/secret.example.yaml", &secret)
	var cm struct {
		Kind     string
		Metadata struct{ Name string }
		Data     map[string]string
	}
	readYAML(t, "kubernetes/configmap.yaml", &cm)
	for k := range cm.Data {
		if !known(k) {
			t.Errorf("configmap sets %s, which wildix-export does not read", k)
		}
	}
	var cron struct {
		Kind string
		Spec struct {
			Schedule          string
			ConcurrencyPolicy string `yaml:"concurrencyPolicy"`
			JobTemplate       struct {
				Spec struct {
					ActiveDeadlineSeconds int `yaml:"activeDeadlineSeconds"`
					Template              struct{ Spec podSpec }
				}
			} `yaml:"jobTemplate"`
		}
	}
	readYAML(t, "kubernetes/cronjob.yaml", &cron)
	if cron.Kind != "CronJob" || cron.Spec.ConcurrencyPolicy != "Forbid" || cron.Spec.JobTemplate.Spec.ActiveDeadlineSeconds == 0 {
		t.Fatalf("cronjob: kind %s, concurrencyPolicy %s, deadline %d", cron.Kind, cron.Spec.ConcurrencyPolicy, cron.Spec.JobTemplate.Spec.ActiveDeadlineSeconds)
	}
	if _, err := config.ParseSchedule(cron.Spec.Schedule, nil); err != nil {
		t.Errorf("cronjob schedule %q: %v", cron.Spec.Schedule, err)
	}
	var job struct {
		Kind string
		Spec struct{ Template struct{ Spec podSpec } }
	}
	readYAML(t, "kubernetes/backfill-job.yaml", &job)
	if job.Kind != "Job" {
		t.Fatalf("backfill: kind %s", job.Kind)
	}
	for name, spec := range map[string]podSpec{"cronjob": cron.Spec.JobTemplate.Spec.Template.Spec, "backfill": job.Spec.Template.Spec} {
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", name, len(spec.Containers))
		}
		c := spec.Containers[0]
		if c.Image == "" || c.Resources.Requests["memory"] == "" || c.Resources.Requests["cpu"] == "" {
			t.Errorf("%s: image %q, requests %v", name, c.Image, c.Resources.Requests)
		}
		if len(c.Args) == 0 || !slices.Contains(commands, c.Args[0]) {
			t.Errorf("%s: args %v do not start with a command", name, c.Args)
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef.Name != cm.Metadata.Name {
				t.Errorf("%s: configMapRef %s not declared", name, ef.ConfigMapRef.Name)
			}
		}
		for _, e := range c.Env {
			if !known(e.Name) {
				t.Errorf("%s: env %s is not read by wildix-export", name, e.Name)
			}
			if ref := e.ValueFrom.SecretKeyRef; ref.Name != "" {
				if _, ok := secret.StringData[ref.Key]; ref.Name != secret.Metadata.Name || !ok {
					t.Errorf("%s: %s refers to secret %s key %s, which is not declared", name, e.Name, ref.Name, ref.Key)
				}
			}
		}
	}
}
