#!/usr/bin/env bash
# Static checks of the deployment files (no image is pulled or built):
#   1. docker-compose.yml parses (`docker compose config`, or docker-compose v1's);
#   2. every image is pinned: an explicit tag other than `latest` (or a digest), in the compose
#      file and in the Dockerfile's FROM lines;
#   3. every variable .env.example names (`NAME=` lines, commented or not; TEST_* and DEV_* are
#      test/dev-script settings and are skipped) is set in the `app` service's environment;
#   4. the traces command of docs/operations.md (`OTEL_EXPORTER_OTLP_ENDPOINT=… docker compose
#      --profile tracing up --build`), run as `config` instead of `up`: the app exports to the
#      endpoint it names, whose host is a service of the `tracing` profile taking OTLP/HTTP
#      there; docker-compose.yml and .env.example quote the same command.
# Exits non-zero with a message naming what is wrong.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

compose_file=docker-compose.yml
fail=0
err() { echo "check-compose: $*" >&2; fail=1; }

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "check-compose: neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 2
fi

# 1. Parse. The normalized output (services at two spaces, their keys at four, environment as a
#    map at six) is what the other checks read, so interpolation and anchors are resolved.
if ! config="$("${compose[@]}" -f "$compose_file" config 2>&1)"; then
  echo "check-compose: $compose_file does not parse (${compose[*]} config):" >&2
  echo "$config" >&2
  exit 1
fi
echo "ok: $compose_file parses (${compose[*]} config)"

# An image reference is pinned when it has a digest, or a tag (after the last '/', so a
# registry port is not mistaken for one) that is not `latest`.
pinned() {
  local ref="$1" name
  [[ "$ref" == *@sha256:* ]] && return 0
  name="${ref##*/}"
  [[ "$name" == *:* ]] || return 1
  [[ "${name##*:}" != latest && -n "${name##*:}" ]]
}

# 2a. Images in the compose file, per service.
images="$(awk '
  /^[^ #]/ { in_services = ($0 ~ /^services:/) ; next }
  in_services && /^  [^ #][^:]*:[[:space:]]*$/ { svc = $1; sub(/:$/, "", svc); next }
  in_services && /^    image:/ { img = $0; sub(/^    image:[[:space:]]*/, "", img); gsub(/["\047]/, "", img); print svc " " img }
' <<<"$config")"
services="$(awk '
  /^[^ #]/ { in_services = ($0 ~ /^services:/) ; next }
  in_services && /^  [^ #][^:]*:[[:space:]]*$/ { svc = $1; sub(/:$/, "", svc); print svc }
' <<<"$config")"
for svc in $services; do
  ref="$(awk -v s="$svc" '$1 == s { print $2 }' <<<"$images")"
  if [ -z "$ref" ]; then
    err "service '$svc' has no image: (give built services an explicit image name:tag too)"
  elif ! pinned "$ref"; then
    err "service '$svc' image '$ref' is not pinned (needs an explicit tag other than 'latest', or a digest)"
  else
    echo "ok: $svc -> $ref"
  fi
done

# 2b. Base images of the Dockerfile (stage names such as `FROM builder` are not images).
if [ -f Dockerfile ]; then
  stages=" $(awk 'toupper($1) == "FROM" { for (i = 2; i <= NF; i++) if (toupper($i) == "AS") print $(i+1) }' Dockerfile | tr '\n' ' ') "
  while read -r ref; do
    [ -z "$ref" ] && continue
    if [[ "$stages" == *" $ref "* ]]; then continue; fi
    if pinned "$ref"; then echo "ok: Dockerfile FROM $ref"; else err "Dockerfile: FROM $ref is not pinned"; fi
  done < <(awk 'toupper($1) == "FROM" { for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; break } }' Dockerfile)
fi

# 3. .env.example's variables in the app service's environment.
wanted="$(sed -nE 's/^[[:space:]]*#?[[:space:]]*([A-Z][A-Z0-9_]*)=.*/\1/p' .env.example \
  | grep -Ev '^(TEST|DEV)_' | sort -u)"
if [ -z "$wanted" ]; then
  err ".env.example lists no variables (is the file there?)"
fi
# The lines of service $1 (its keys and below) in the normalized config on stdin.
service_block() {
  awk -v s="  $1:" '
    /^[^ #]/ { in_services = ($0 ~ /^services:/); next }
    in_services && /^  [^ #]/ { on = ($0 == s); next }
    in_services && on { print }'
}
app_env="$(service_block app <<<"$config" | awk '
  /^    [^ ]/ { in_env = ($0 ~ /^    environment:/); next }
  in_env && /^      [A-Za-z_][A-Za-z0-9_]*:/ { k = $1; sub(/:$/, "", k); print k }
' | sort -u)"
missing="$(comm -23 <(echo "$wanted") <(echo "$app_env"))"
if [ -n "$missing" ]; then
  err "the app service's environment lacks these .env.example variables: $(echo $missing)"
else
  echo "ok: app sets all $(echo "$wanted" | wc -l) variables of .env.example: $(echo $wanted)"
fi

# 4. The documented traces command (indented as a code block in docs/operations.md).
traces_cmd="$(sed -nE 's/^    (OTEL_EXPORTER_OTLP_ENDPOINT=[^ ]+ docker compose --profile tracing up --build)$/\1/p' docs/operations.md)"
if [ "$(grep -c . <<<"$traces_cmd")" -ne 1 ]; then
  err "docs/operations.md: expected one traces command line, found: ${traces_cmd:-none}"
else
  endpoint="${traces_cmd%% *}"; endpoint="${endpoint#OTEL_EXPORTER_OTLP_ENDPOINT=}"
  for file in docker-compose.yml .env.example; do
    grep -qF -- "$traces_cmd" "$file" || err "$file does not quote the traces command: $traces_cmd"
  done
  if ! traced="$(OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint" "${compose[@]}" -f "$compose_file" --profile tracing config 2>&1)"; then
    err "the traces command's configuration does not parse: $traced"
  else
    host="${endpoint#http://}"; port="${host##*:}"; host="${host%%[:/]*}"
    app_endpoint="$(service_block app <<<"$traced" | sed -nE 's/^      OTEL_EXPORTER_OTLP_ENDPOINT: *"?([^"]*)"?$/\1/p')"
    collector="$(service_block "$host" <<<"$traced")"
    if [ "$app_endpoint" != "$endpoint" ]; then
      err "with the traces command the app exports to '${app_endpoint}', not '$endpoint'"
    elif [ -z "$collector" ]; then
      err "the traces command's endpoint names '$host', not a service of the tracing profile"
    elif ! grep -qE '^    - tracing$|^    profiles:.*tracing' <<<"$collector"; then
      err "service '$host' is not in the 'tracing' profile"
    elif [ "$port" != 4318 ] || ! grep -qE '^      COLLECTOR_OTLP_ENABLED: "?true"?$' <<<"$collector"; then
      err "service '$host' does not take OTLP/HTTP on port $port (Jaeger: COLLECTOR_OTLP_ENABLED, 4318)"
    else
      echo "ok: the traces command exports to $endpoint, the tracing profile's '$host' service"
    fi
  fi
fi

if [ "$fail" -ne 0 ]; then
  echo "check-compose: FAILED" >&2
  exit 1
fi
echo "check-compose: all checks passed"
