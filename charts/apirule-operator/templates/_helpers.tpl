{{/*
Object names are fixed: the manager's flag defaults name its webhook Service, webhook
configuration and certificate Secret, and kustomize installs the same names.
*/}}
{{- define "apirule-operator.name" -}}apirule-operator{{- end -}}

{{- define "apirule-operator.selectorLabels" -}}
app.kubernetes.io/name: apirule-operator
control-plane: controller-manager
{{- end -}}

{{- define "apirule-operator.labels" -}}
app.kubernetes.io/name: apirule-operator
app.kubernetes.io/part-of: apirule-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "apirule-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The ingress gateway selector as the flag wants it: key=value pairs, sorted, comma-separated. */}}
{{- define "apirule-operator.selectorFlag" -}}
{{- $pairs := list -}}
{{- range $k, $v := .Values.ingressGateway.selector -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," (sortAlpha $pairs) -}}
{{- end -}}
