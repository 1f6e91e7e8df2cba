{{/* wildix-export.fullname: the name of one PBX's objects. */}}
{{- define "wildix-export.fullname" -}}
{{- printf "wildix-export-%s" . | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* wildix-export.labels: labels of one PBX's objects; takes (list $ $pbx). */}}
{{- define "wildix-export.labels" -}}
{{- $root := index . 0 -}}
{{- $pbx := index . 1 -}}
app.kubernetes.io/name: wildix-export
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
wildix-export/pbx: {{ $pbx.name }}
{{- end -}}

{{/* wildix-export.schedule: the PBX's own schedule, or its slot in the
night; takes (list $ $index). */}}
{{- define "wildix-export.schedule" -}}
{{- $root := index . 0 -}}
{{- $i := index . 1 -}}
{{- $pbx := index $root.Values.pbxes $i -}}
{{- if $pbx.schedule -}}
{{- $pbx.schedule -}}
{{- else -}}
{{- $n := len $root.Values.pbxes -}}
{{- $offset := div (mul $i (mul (int $root.Values.spread.windowHours) 60)) $n -}}
{{- $minute := mod $offset 60 -}}
{{- $hour := mod (add (int $root.Values.spread.startHour) (div $offset 60)) 24 -}}
{{- printf "%d %d * * *" $minute $hour -}}
{{- end -}}
{{- end -}}

{{/* wildix-export.memoryLimit: resources.limits.memory, or the bound of
EXPORT_MAX_RESPONSE_SIZE (64 MiB) x (2 x concurrency + 2) + 64 MiB, plus
16 MiB a recording copied at once (a file sent to S3 in one PUT is held
whole), in Mi. */}}
{{- define "wildix-export.memoryLimit" -}}
{{- if .Values.resources.limits.memory -}}
{{- .Values.resources.limits.memory -}}
{{- else -}}
{{- printf "%dMi" (add (mul 64 (add (mul 2 (int .Values.concurrency)) 2)) 64 (mul 16 (int .Values.concurrency))) -}}
{{- end -}}
{{- end -}}
