package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/wildix-export/wildix-export/config"
)

// objects are Kubernetes objects decoded strictly into the API types, as
// the API server does: a field the type does not have, a field spelt in
// another case (encoding/json alone would accept readOnlyRootFileSystem),
// or one given twice, is an error.
type objects struct {
	cronJobs   []batchv1.CronJob
	jobs       []batchv1.Job
	configMaps []corev1.ConfigMap
	secrets    []corev1.Secret
}

// decode adds every YAML document of text (from source) to o.
func (o *objects) decode(source, text string) error {
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(text, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return fmt.Errorf("%s document %d: %w", source, i, err)
		}
		var err error
		switch head.APIVersion + " " + head.Kind {
		case "batch/v1 CronJob":
			var v batchv1.CronJob
			err = strict(doc, &v)
			o.cronJobs = append(o.cronJobs, v)
		case "batch/v1 Job":
			var v batchv1.Job
			err = strict(doc, &v)
			o.jobs = append(o.jobs, v)
		case "v1 ConfigMap":
			var v corev1.ConfigMap
			err = strict(doc, &v)
			o.configMaps = append(o.configMaps, v)
		case "v1 Secret":
			var v corev1.Secret
			err = strict(doc, &v)
			o.secrets = append(o.secrets, v)
		default:
			err = fmt.Errorf("unexpected object %s %s", head.APIVersion, head.Kind)
		}
		if err != nil {
			return fmt.Errorf("%s document %d (%s): %w", source, i, head.Kind, err)
		}
	}
	return nil
}

// strict decodes one YAML document into v as the API server would.
func strict(doc string, v any) error {
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return err
	}
	strictErrs, err := sjson.UnmarshalStrict(js, v, sjson.DisallowDuplicateFields, sjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// render renders the chart with the values file, as `helm template` would,
// with Helm's own packages.
func render(t *testing.T, ch *chart.Chart, valuesFile string) map[string]string {
	t.Helper()
	vals, err := chartutil.ReadValuesFile(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	top, err := chartutil.ToRenderValues(ch, vals.AsMap(),
		chartutil.ReleaseOptions{Name: "nightly", Namespace: "wildix", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, top)
	if err != nil {
		t.Fatalf("render %s: %v", valuesFile, err)
	}
	return out
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load("helm/wildix-export")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func decodeRendered(out map[string]string) (*objects, error) {
	var o objects
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.HasSuffix(name, ".yaml") {
			if err := o.decode(name, out[name]); err != nil {
				return nil, err
			}
		}
	}
	return &o, nil
}

// memoryBound is docs/deployment.md's bound for EXPORT_CONCURRENCY c: answers of
// up to EXPORT_MAX_RESPONSE_SIZE (64 MiB by default), 2c+2 of them in
// flight, plus 64 MiB for the rest, plus 16 MiB for each of the c recordings
// copied at once (one sent to S3 in one PUT is held whole).
func memoryBound(c int64) *resource.Quantity {
	return resource.NewQuantity((64*(2*c+2)+64+16*c)<<20, resource.BinarySI)
}

// checkPod holds what every pod of wildix-export must be: non-root, a
// read-only root, no privilege escalation, a memory limit at least the
// bound, every variable one the program reads, secrets by reference.
func checkPod(t *testing.T, name string, spec corev1.PodSpec, cms map[string]corev1.ConfigMap) {
	t.Helper()
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: the pod may run as root", name)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", name, len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: the root filesystem is writable or privileges may escalate", name)
	}
	if len(c.Args) == 0 || !slices.Contains(commands, c.Args[0]) {
		t.Errorf("%s: args %v do not start with a command", name, c.Args)
	}
	concurrency := int64(4)
	for _, ef := range c.EnvFrom {
		cm, ok := cms[ef.ConfigMapRef.Name]
		if !ok {
			t.Errorf("%s: configMapRef %s: no such ConfigMap", name, ef.ConfigMapRef.Name)
		}
		if v, ok := cm.Data["EXPORT_CONCURRENCY"]; ok {
			if _, err := fmt.Sscan(v, &concurrency); err != nil {
				t.Errorf("%s: EXPORT_CONCURRENCY %q: %v", name, v, err)
			}
		}
	}
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if bound := memoryBound(concurrency); !ok || limit.Cmp(*bound) < 0 {
		t.Errorf("%s: memory limit %s is below the bound %s for EXPORT_CONCURRENCY=%d", name, limit.String(), bound.String(), concurrency)
	}
	for _, e := range c.Env {
		if !known(e.Name) {
			t.Errorf("%s: env %s is not read by wildix-export", name, e.Name)
		}
		if e.Value != "" && e.ValueFrom == nil && strings.Contains(e.Name, "SECRET") {
			t.Errorf("%s: %s is given in clear", name, e.Name)
		}
	}
}

func TestHelmChartRendersThreePBXes(t *testing.T) {
	out := render(t, loadChart(t), "testdata/three-pbxes.yaml")
	o, err := decodeRendered(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.cronJobs) != 3 || len(o.configMaps) != 3 || len(o.jobs)+len(o.secrets) != 0 {
		t.Fatalf("rendered %d CronJobs, %d ConfigMaps, %d Jobs, %d Secrets; want 3 CronJobs and 3 ConfigMaps",
			len(o.cronJobs), len(o.configMaps), len(o.jobs), len(o.secrets))
	}
	cms := map[string]corev1.ConfigMap{}
	for _, cm := range o.configMaps {
		cms[cm.Name] = cm
		for k := range cm.Data {
			if !known(k) {
				t.Errorf("ConfigMap %s sets %s, which wildix-export does not read", cm.Name, k)
			}
		}
	}
	want := map[string]struct {
		zone, schedule, endpoints, secret, level string
	}{
		"wildix-export-acme":    {"Europe/Rome", "0 1 * * *", "", "wildix-export-acme/client-secret", ""},
		"wildix-export-globex":  {"America/New_York", "20 2 * * *", "", "wildix-export-globex/client-secret", "debug"},
		"wildix-export-initech": {"Europe/Berlin", "30 23 * * *", "call_history,colleagues", "initech-oauth/secret", ""},
	}
	for _, cj := range o.cronJobs {
		w, ok := want[cj.Name]
		if !ok {
			t.Errorf("unexpected CronJob %s", cj.Name)
			continue
		}
		delete(want, cj.Name)
		if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			t.Errorf("%s: concurrencyPolicy %q", cj.Name, cj.Spec.ConcurrencyPolicy)
		}
		if cj.Spec.Schedule != w.schedule || cj.Spec.TimeZone == nil || *cj.Spec.TimeZone != w.zone {
			t.Errorf("%s: schedule %q in %v, want %q in %s", cj.Name, cj.Spec.Schedule, cj.Spec.TimeZone, w.schedule, w.zone)
		}
		if _, err := config.ParseSchedule(cj.Spec.Schedule, nil); err != nil {
			t.Errorf("%s: schedule %q: %v", cj.Name, cj.Spec.Schedule, err)
		}
		if cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds == nil {
			t.Errorf("%s: no deadline", cj.Name)
		}
		spec := cj.Spec.JobTemplate.Spec.Template.Spec
		checkPod(t, cj.Name, spec, cms)
		c := spec.Containers[0]
		if c.Image != "registry.example.com/wildix-export:1.4.2" {
			t.Errorf("%s: image %q", cj.Name, c.Image)
		}
		secrets := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				secrets[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
			}
		}
		if secrets["WILDIX_CLIENT_SECRET"] != w.secret || secrets["EXPORT_DATABASE_URL"] != "wildix-export/database-url" {
			t.Errorf("%s: secret references %v", cj.Name, secrets)
		}
		cm := cms[cj.Name]
		if cm.Data["WILDIX_TIMEZONE"] != w.zone || cm.Data["EXPORT_ENDPOINTS"] != w.endpoints ||
			cm.Data["EXPORT_MAX_RPS"] != "20" || cm.Data["EXPORT_LOG_LEVEL"] != w.level || cm.Data["EXPORT_SINK"] != "postgres" {
			t.Errorf("%s: ConfigMap data %v", cj.Name, cm.Data)
		}
	}
	if len(want) != 0 {
		t.Errorf("CronJobs missing: %v", want)
	}
}

// TestHelmChartMisspeltFieldFails breaks a field name in a template, as a
// typo would, and expects the strict decoding to refuse it; and a PBX
// without a time zone to be refused at render time.
func TestHelmChartMisspeltFieldFails(t *testing.T) {
	for _, typo := range [][2]string{
		{"concurrencyPolicy:", "concurencyPolicy:"},
		{"readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"secretKeyRef:", "secretKeyref:"},
	} {
		ch := loadChart(t)
		broken := false
		for _, tpl := range ch.Templates {
			if bytes.Contains(tpl.Data, []byte(typo[0])) {
				tpl.Data = bytes.ReplaceAll(tpl.Data, []byte(typo[0]), []byte(typo[1]))
				broken = true
			}
		}
		if !broken {
			t.Fatalf("no template has %s", typo[0])
		}
		_, err := decodeRendered(render(t, ch, "testdata/three-pbxes.yaml"))
		if err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("%s misspelt as %s: err %v, want an unknown field", typo[0], typo[1], err)
		}
	}

	vals, err := os.ReadFile("testdata/three-pbxes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, bytes.Replace(vals, []byte("timezone: Europe/Rome"), nil, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ch := loadChart(t)
	top, err := chartutil.ToRenderValues(ch, v.AsMap(), chartutil.ReleaseOptions{Name: "nightly"}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(ch, top); err == nil || !strings.Contains(err.Error(), "pbxes[acme]: timezone is required") {
		t.Errorf("a PBX without a time zone: err %v", err)
	}
}

// TestKubernetesManifestsStrict decodes every plain manifest in kubernetes/
// into the API types, unknown fields refused, and holds its pods to the
// same rules as the chart's.
func TestKubernetesManifestsStrict(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var o objects
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.decode(f, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	if len(o.cronJobs) != 1 || len(o.jobs) != 1 || len(o.configMaps) != 1 || len(o.secrets) != 1 {
		t.Fatalf("%d CronJobs, %d Jobs, %d ConfigMaps, %d Secrets; want one each", len(o.cronJobs), len(o.jobs), len(o.configMaps), len(o.secrets))
	}
	cms := map[string]corev1.ConfigMap{o.configMaps[0].Name: o.configMaps[0]}
	if o.cronJobs[0].Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("cronjob: concurrencyPolicy %q", o.cronJobs[0].Spec.ConcurrencyPolicy)
	}
	checkPod(t, "cronjob", o.cronJobs[0].Spec.JobTemplate.Spec.Template.Spec, cms)
	checkPod(t, "backfill", o.jobs[0].Spec.Template.Spec, cms)
}
