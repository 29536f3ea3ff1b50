{{/*
Object names start with the fullname, apirule-operator unless overridden, whatever the release
is called: kustomize installs the same names, the manager's flag defaults name its webhook
Service, configuration and certificate Secret, and most objects are cluster-wide, so the
chart is installed once per cluster. With another fullname the chart passes the manager the
names that follow from it.
*/}}
{{- define "apirule-operator.name" -}}
{{- .Values.nameOverride | default "apirule-operator" | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* 40 characters leave room for the longest suffix (-validating-webhook-configuration). */}}
{{- define "apirule-operator.fullname" -}}
{{- .Values.fullnameOverride | default (include "apirule-operator.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "apirule-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (printf "%s-controller-manager" (include "apirule-operator.fullname" .)) -}}
{{- else -}}
{{- required "serviceAccount.create is false: set serviceAccount.name to the existing ServiceAccount the manager runs as" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "apirule-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apirule-operator.name" . }}
control-plane: controller-manager
{{- end -}}

{{- define "apirule-operator.labels" -}}
app.kubernetes.io/name: {{ include "apirule-operator.name" . }}
app.kubernetes.io/part-of: apirule-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "apirule-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The ingress gateway namespace, the manager's default when the value is empty. */}}
{{- define "apirule-operator.ingressNamespace" -}}
{{- .Values.ingressGateway.namespace | default "istio-system" -}}
{{- end -}}

{{/* Whether the operator manages the webhook certificate itself (--webhook-cert-management=self). */}}
{{- define "apirule-operator.selfManagedCert" -}}
{{- if and .Values.webhook.enabled (not .Values.webhook.certManager.enabled) }}true{{ end -}}
{{- end -}}

{{/*
Who sets the operator's finalizer on create (finalizerAdmission): "policy", the API server's
MutatingAdmissionPolicy (Kubernetes 1.36 and later); "webhook", the operator's mutating
webhook; "" for neither (the operator then patches it in itself). auto picks the policy where
the cluster serves it, else the webhook when it is enabled. Against a cluster Helm knows the
served kinds ("v1/Pod" is among them); offline (helm template) it knows only the version, and
the policy is served from 1.36 on. An unset value (helm upgrade --reuse-values from a release
before this value) is auto.
*/}}
{{- define "apirule-operator.finalizerAdmission" -}}
{{- $mode := .Values.finalizerAdmission | default "auto" -}}
{{- if eq $mode "auto" -}}
{{- $served := semverCompare ">=1.36.0-0" .Capabilities.KubeVersion.Version -}}
{{- if .Capabilities.APIVersions.Has "v1/Pod" -}}
{{- $served = .Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy" -}}
{{- end -}}
{{- if $served -}}
{{- $mode = "policy" -}}
{{- else if .Values.webhook.enabled -}}
{{- $mode = "webhook" -}}
{{- else -}}
{{- $mode = "" -}}
{{- end -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{/* The ingress gateway selector as the flag wants it: key=value pairs, sorted, comma-separated. */}}
{{- define "apirule-operator.selectorFlag" -}}
{{- $pairs := list -}}
{{- range $k, $v := .Values.ingressGateway.selector -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," (sortAlpha $pairs) -}}
{{- end -}}

{{/*
Refusals of value combinations the schema cannot express, each naming the values and the fix.
Rendered once, from the Deployment.
*/}}
{{- define "apirule-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: replicas without leader election would all reconcile and overwrite each other; set leaderElection.enabled=true or replicaCount=1" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and (eq .Values.finalizerAdmission "webhook") (not .Values.webhook.enabled) -}}
{{- fail "finalizerAdmission is webhook but webhook.enabled is false: the finalizer webhook is served by the operator's webhook server; set webhook.enabled=true, or finalizerAdmission=policy (Kubernetes 1.36 and later)" -}}
{{- end -}}
{{- if hasKey .Values "replicas" -}}
{{- fail "the value replicas is now replicaCount: set replicaCount instead" -}}
{{- end -}}
{{- with .Values.ingressGateway.principal -}}
{{- $parts := regexFindAll "/ns/[^/]+/sa/" . 1 -}}
{{- $namespace := "" -}}
{{- if $parts -}}{{- $namespace = (first $parts) | trimPrefix "/ns/" | trimSuffix "/sa/" -}}{{- end -}}
{{- if ne $namespace (include "apirule-operator.ingressNamespace" $) -}}
{{- fail (printf "ingressGateway.principal %s names namespace %q but the ingress gateway namespace (ingressGateway.namespace) is %q: the gateway's Pods cannot hold that identity and every request would be denied; make the two agree, or leave ingressGateway.principal empty to derive it" . $namespace (include "apirule-operator.ingressNamespace" $)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
