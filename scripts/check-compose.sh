#!/usr/bin/env bash
# Static checks of the deployment files (no image is pulled or built):
#   1. docker-compose.yml parses (`docker compose config`, or docker-compose v1's);
#   2. every image is pinned: an explicit tag other than `latest` (or a digest), in the compose
#      file and in the Dockerfile's FROM lines;
#   3. every variable .env.example names (`NAME=` lines, commented or not; TEST_* and DEV_* are
#      test/dev-script settings and are skipped) is set in the `app` service's environment.
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
app_env="$(awk '
  /^[^ #]/ { in_services = ($0 ~ /^services:/) ; next }
  in_services && /^  [^ #][^:]*:[[:space:]]*$/ { svc = $1; sub(/:$/, "", svc); in_env = 0; next }
  in_services && svc == "app" && /^    [^ ]/ { in_env = ($0 ~ /^    environment:/); next }
  in_services && svc == "app" && in_env && /^      [A-Za-z_][A-Za-z0-9_]*:/ { k = $1; sub(/:$/, "", k); print k }
' <<<"$config" | sort -u)"
missing="$(comm -23 <(echo "$wanted") <(echo "$app_env"))"
if [ -n "$missing" ]; then
  err "the app service's environment lacks these .env.example variables: $(echo $missing)"
else
  echo "ok: app sets all $(echo "$wanted" | wc -l) variables of .env.example: $(echo $wanted)"
fi

if [ "$fail" -ne 0 ]; then
  echo "check-compose: FAILED" >&2
  exit 1
fi
echo "check-compose: all checks passed"
