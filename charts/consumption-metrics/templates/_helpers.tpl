{{/*
The labels kustomize/base gives every object (its `labels:` transformer, selectors left alone).
The objects' names are fixed, as in the base: the Role is scoped to the checkpoint ConfigMap by
name, and the alerts and runbook name the job.
*/}}
{{- define "consumption-metrics.labels" -}}
app.kubernetes.io/name: consumption-metrics
app.kubernetes.io/part-of: billing
{{- end }}
