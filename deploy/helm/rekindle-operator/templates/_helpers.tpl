{{/* The chart's name, shortened to a label's 63 characters. */}}
{{- define "rekindle-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already names the chart. */}}
{{- define "rekindle-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rekindle-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rekindle-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rekindle-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rekindle-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rekindle
{{- end }}

{{- define "rekindle-operator.serviceAccountName" -}}
{{- if .Values.reloader.serviceAccount.create }}
{{- default (include "rekindle-operator.fullname" .) .Values.reloader.serviceAccount.name }}
{{- else }}
{{- required "reloader.serviceAccount.name is required when reloader.serviceAccount.create is false" .Values.reloader.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rekindle-operator.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion (toString $image.tag)) }}
{{- end }}
{{- end }}

{{/*
The namespaces listed for --namespaces, as a list: rekindle.namespaces, and Reloader's
reloader.namespaces (a comma-separated string), to which Reloader's chart adds the release
namespace; empty when neither is set.
*/}}
{{- define "rekindle-operator.listedNamespaces" -}}
{{- $listed := list }}
{{- range .Values.rekindle.namespaces }}
{{- $listed = append $listed (toString .) }}
{{- end }}
{{- with .Values.reloader.namespaces }}
{{- range splitList "," (toString .) }}
{{- if trim . }}
{{- $listed = append $listed (trim .) }}
{{- end }}
{{- end }}
{{- $listed = append $listed $.Release.Namespace }}
{{- end }}
{{- toYaml (uniq $listed) }}
{{- end }}

{{/* The namespaces watched with Roles (reloader.watchGlobally=false), as a list. */}}
{{- define "rekindle-operator.watchedNamespaces" -}}
{{- $listed := include "rekindle-operator.listedNamespaces" . | fromYamlArray }}
{{- if $listed }}
{{- toYaml $listed }}
{{- else }}
{{- toYaml (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
Checks the values that would install something that cannot run, and fails with the
value named.
*/}}
{{- define "rekindle-operator.validate" -}}
{{- $r := .Values.reloader }}
{{- if and $r.ignoreSecrets $r.ignoreConfigMaps }}
{{- fail "reloader.ignoreSecrets and reloader.ignoreConfigMaps cannot both be true: the operator would watch nothing" }}
{{- end }}
{{- if not (has (toString $r.reloadStrategy) (list "default" "env-vars" "annotations")) }}
{{- fail (printf "reloader.reloadStrategy: %q is not a strategy; use default, env-vars or annotations" (toString $r.reloadStrategy)) }}
{{- end }}
{{- if and (or .Values.rekindle.namespaces $r.namespaces) $r.watchGlobally }}
{{- fail "rekindle.namespaces and reloader.namespaces need reloader.watchGlobally=false (they replace watching every namespace)" }}
{{- end }}
{{- if $r.isOpenshift }}
{{- fail "reloader.isOpenshift: rekindle-operator does not roll OpenShift DeploymentConfigs" }}
{{- end }}
{{- end }}

{{/* The operator's arguments, from the values. */}}
{{- define "rekindle-operator.args" -}}
{{- $r := .Values.reloader }}
{{- $k := .Values.rekindle }}
- --metrics-addr=:9090
{{- $listed := include "rekindle-operator.listedNamespaces" . | fromYamlArray }}
{{- if $listed }}
- --namespaces={{ join "," $listed }}
{{- end }}
{{- if $r.watchGlobally }}
{{- with $r.namespaceSelector }}
- --namespace-selector={{ . }}
{{- end }}
{{- with $r.ignoreNamespaces }}
- --namespaces-to-ignore={{ . }}
{{- end }}
{{- end }}
{{- with $r.resourceLabelSelector }}
- --resource-label-selector={{ . }}
{{- end }}
{{- if $r.ignoreSecrets }}
- --resources-to-ignore=secrets
{{- else if $r.ignoreConfigMaps }}
- --resources-to-ignore=configmaps
{{- end }}
{{- if and $r.ignoreJobs $r.ignoreCronJobs }}
- --ignored-workload-types=jobs,cronjobs
{{- else if $r.ignoreJobs }}
- --ignored-workload-types=jobs
{{- else if $r.ignoreCronJobs }}
- --ignored-workload-types=cronjobs
{{- end }}
{{- if $r.isArgoRollouts }}
- --is-Argo-Rollouts=true
{{- end }}
{{- if $r.reloadOnCreate }}
- --reload-on-create=true
{{- end }}
{{- if $r.reloadOnDelete }}
- --reload-on-delete=true
{{- end }}
{{- if $r.syncAfterRestart }}
- --sync-after-restart
{{- end }}
{{- if $r.autoReloadAll }}
- --auto-reload-all
{{- end }}
{{- if ne (toString $r.reloadStrategy) "default" }}
- --reload-strategy={{ $r.reloadStrategy }}
{{- end }}
{{- with $r.webhookUrl }}
- --webhook-url={{ . }}
{{- end }}
{{- with $r.logFormat }}
- --log-format={{ . }}
{{- end }}
{{- if and $r.logLevel (ne (toString $r.logLevel) "info") }}
- --log-level={{ $r.logLevel }}
{{- end }}
{{- if $r.enableHA }}
- --enable-ha
{{- end }}
{{- if $r.enableCSIIntegration }}
- --enable-csi-integration
{{- end }}
{{- with $r.custom_annotations }}
{{- $flags := dict "configmap" "configmap-annotation" "secret" "secret-annotation" "auto" "auto-annotation" "configmap_auto" "configmap-auto-annotation" "secret_auto" "secret-auto-annotation" "search" "auto-search-annotation" "match" "search-match-annotation" "ignore" "ignore-annotation" "pausePeriod" "pause-deployment-annotation" "pauseTime" "pause-deployment-time-annotation" }}
{{- range $name, $value := . }}
{{- if not (hasKey $flags $name) }}
{{- fail (printf "reloader.custom_annotations.%s: not one of Reloader's annotation overrides (%s)" $name (keys $flags | sortAlpha | join ", ")) }}
{{- end }}
{{- if $value }}
- --{{ get $flags $name }}={{ $value }}
{{- end }}
{{- end }}
{{- end }}
{{- with $k.cooldown }}
- --cooldown={{ . }}
{{- end }}
{{- with $k.hash }}
- --hash={{ . }}
{{- end }}
{{- with $k.hashKeySecret }}
- --hash-key-secret={{ . }}
{{- end }}
{{- with $k.leaseName }}
- --lease-name={{ . }}
{{- end }}
{{- range $k.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}

{{/* What the operator needs in every namespace it watches (ClusterRole or Role). */}}
{{- define "rekindle-operator.watchRules" -}}
# Sources: watched (list in pages, then watch); never written.
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: [list, watch]
# The fleet view (rekindle_workload_config_pods): pod metadata only, for the
# reports pods write in their rekindle.io/applied annotation; never written.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# Workloads: watched, and patched to roll them.
- apiGroups: [apps]
  resources: [deployments, daemonsets, statefulsets]
  verbs: [list, watch, patch]
# CronJobs are instantiated (a Job is created from them); Jobs are re-created.
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Argo Rollouts (only with --is-Argo-Rollouts=true).
- apiGroups: [argoproj.io]
  resources: [rollouts]
  verbs: [get, list, watch, patch]
# SecretProviderClasses (only with --enable-csi-integration).
- apiGroups: [secrets-store.csi.x-k8s.io]
  resources: [secretproviderclasses, secretproviderclasspodstatuses]
  verbs: [list, watch]
# Reloaded / ReloadFail events on the workloads.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
