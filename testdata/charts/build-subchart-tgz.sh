#!/bin/sh
# Regenerates with-subcharts/charts/subtgz-0.2.0.tgz, the packaged subchart of the
# with-subcharts fixture, reproducibly (sorted entries, owner 0, mtime 0, no gzip name/time).
# Run from anywhere: sh testdata/charts/build-subchart-tgz.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/subtgz/templates"
cat > "$work/subtgz/Chart.yaml" <<'YAML'
apiVersion: v2
name: subtgz
description: A packaged subchart
version: 0.2.0
YAML
cat > "$work/subtgz/values.yaml" <<'YAML'
greeting: hello from subtgz
YAML
cat > "$work/subtgz/templates/configmap.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-subtgz
data:
  greeting: {{ .Values.greeting | quote }}
YAML
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=0644 \
  -cf - subtgz/Chart.yaml subtgz/values.yaml subtgz/templates/configmap.yaml |
  gzip -n -9 > "$here/with-subcharts/charts/subtgz-0.2.0.tgz"
