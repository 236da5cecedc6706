#!/usr/bin/env python3
"""Offline, static checks of the deployment artefacts.

Run by deploy/validate.sh inside its venv (PyYAML, kubernetes-validate, jsonpatch).
Checks, in order:

* kustomize: every kustomization under k8s/ references only existing files, the
  base has no unreferenced manifest, secret.example.yaml is never referenced;
  each kustomization is rendered by a small built-in renderer (resources,
  namespace, images, replicas, JSON6902 patches: anything else is rejected) and,
  when `kubectl kustomize` or `kustomize` is on PATH, also by the real kustomize,
  and both renders must be identical;
* Kubernetes schemas: every rendered object (and secret.example.yaml) against the
  strict (no unknown fields) OpenAPI schemas of each version in --k8s-version;
* cross-references: env vars (names and values) against the platform's config
  contract, ConfigMap/Secret keys, selectors, ports, probes, resources, security
  contexts, Ingress/PDB/HPA/NetworkPolicy targets, the migration Job;
* docker-compose.yml: the same contract, dependency conditions, healthchecks;
* deploy/Dockerfile and .dockerignore against the Cargo workspace;
* deploy/postgres/init.sql: roles, schemas, search_path, revokes.

Exit status 0 when everything passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]
from pathlib import Path
from typing import Any

import jsonpatch
from kubernetes_validate import utils as kv
import yaml

# ---------------------------------------------------------------------------
# The platform's contract (docs/operations.md has the same table).
# ---------------------------------------------------------------------------
NAMESPACE = "marketing"
IMAGE_BASENAME = "marketing-platform"
CONFIGMAP = "marketing-config"
SECRET = "marketing-secrets"
DATABASE = "marketing"
INGRESS_HOST = "api.marketing.local"
INGRESS_CLASS = "nginx"

# binary / k8s name -> (HTTP port, Postgres schema == role)
SERVICES: dict[str, tuple[int, str]] = {
    "ingestion": (8081, "ingestion"),
    "segmentation": (8082, "segmentation"),
    "campaign": (8083, "campaign"),
    "webhook": (8084, "webhook"),
    "cdp-analytics": (8085, "cdp_analytics"),
}
GATEWAY = "gateway"
GATEWAY_PORT = 8080
BINARIES = [*SERVICES, GATEWAY]

SERVICE_ENV_REQUIRED = {
    "MKT_HTTP__ADDR",
    "MKT_DATABASE__URL",
    "MKT_DATABASE__SCHEMA",
    "MKT_DATABASE__POOL_SIZE",
    "MKT_DATABASE__STATEMENT_TIMEOUT_MS",
    "MKT_BUS__URL",
    "MKT_AUTH__ISSUER",
    "MKT_AUTH__AUDIENCE",
    "RUST_LOG",
    "MKT_TELEMETRY__LOG_FORMAT",
    "OTEL_SERVICE_NAME",
}
AUTH_KEY_ENV = {"MKT_AUTH__HS256_SECRET", "MKT_AUTH__JWKS_URL"}  # at least one
OPTIONAL_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT", "MKT_HTTP__WORKERS", "MKT_AUTH__LEEWAY_SECS"}
# Further tunables the services read (crates/mkt-runtime, mkt-db, mkt-bus); allowed, not required.
SERVICE_ENV_OPTIONAL = {
    "MKT_RUN_MIGRATIONS",
    "MKT_DATABASE__ACQUIRE_TIMEOUT_MS",
    "MKT_BUS__EXCHANGE",
    "MKT_BUS__DEAD_LETTER_EXCHANGE",
    "MKT_BUS__PREFETCH",
    "MKT_BUS__DELIVERY_LIMIT",
    "MKT_BUS__RELAY_BATCH",
    "MKT_BUS__POLL_INTERVAL_MS",
    "MKT_BUS__RETENTION_HOURS",
}
GATEWAY_ENV_OPTIONAL = {"MKT_UPSTREAMS__CONNECT_TIMEOUT_MS"}
# Service-specific settings (docs/operations.md, docs/integrations.md), by binary.
SERVICE_SPECIFIC_ENV = {
    "ingestion": {
        "MKT_INTEGRATIONS__ENCRYPTION_KEY",
        "MKT_INTEGRATIONS__ENCRYPTION_KEY_ID",
        "MKT_INTEGRATIONS__PREVIOUS_ENCRYPTION_KEYS",
        "MKT_INTEGRATIONS__VTEX_BASE_URL",
        "MKT_INTEGRATIONS__VTEX_TIMEOUT_MS",
        "MKT_INTEGRATIONS__SYNC_POLL_MS",
    },
}


def upstream_env(name: str) -> str:
    return "MKT_UPSTREAMS__" + name.upper().replace("-", "_")


GATEWAY_ENV_REQUIRED = {
    "MKT_HTTP__ADDR",
    "MKT_AUTH__ISSUER",
    "MKT_AUTH__AUDIENCE",
    *(upstream_env(s) for s in SERVICES),
    "MKT_UPSTREAMS__TIMEOUT_MS",
    "RUST_LOG",
    "MKT_TELEMETRY__LOG_FORMAT",
    "OTEL_SERVICE_NAME",
}
SECRET_KEYS_REQUIRED = {f"{s}-database-url" for s in SERVICES} | {"amqp-url", "jwt-hs256-secret"}
SECRET_KEYS_OPTIONAL = {"jwt-hs256-secret", "integrations-encryption-key"}  # must be referenced with optional: true

CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "IngressClass", "PriorityClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images", "replicas", "patches"}


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------
class Report:
    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.errors: list[str] = []
        self.passed = 0
        self.section = ""

    def start(self, section: str) -> None:
        self.section = section
        print(f"--- {section}")

    def ok(self, msg: str) -> None:
        self.passed += 1
        if self.verbose:
            print(f"  ok    {msg}")

    def fail(self, msg: str) -> None:
        self.errors.append(f"[{self.section}] {msg}")
        print(f"  FAIL  {msg}")

    def info(self, msg: str) -> None:
        print(f"  info  {msg}")

    def check(self, cond: bool, ok_msg: str, fail_msg: str | None = None) -> bool:
        if cond:
            self.ok(ok_msg)
        else:
            self.fail(fail_msg or ok_msg)
        return cond


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def obj_id(o: dict[str, Any]) -> str:
    md = o.get("metadata", {})
    ns = md.get("namespace")
    return f"{o.get('kind')}/{(ns + '/') if ns else ''}{md.get('name')}"


# ---------------------------------------------------------------------------
# Kustomize: reference checks and a minimal offline renderer
# ---------------------------------------------------------------------------
def find_kustomization(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        p = directory / name
        if p.is_file():
            return p
    return None


class RenderError(Exception):
    pass


def split_image(image: str) -> tuple[str, str | None, str | None]:
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    return image, tag, digest


def pod_specs(o: dict[str, Any]) -> list[dict[str, Any]]:
    kind = o.get("kind")
    spec = o.get("spec") or {}
    if kind == "Pod":
        return [spec]
    if kind in POD_TEMPLATE_KINDS:
        return [((spec.get("template") or {}).get("spec")) or {}]
    if kind == "CronJob":
        return [(((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}]
    return []


def all_containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])


def target_matches(target: dict[str, Any], o: dict[str, Any]) -> bool:
    api = o.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    md = o.get("metadata", {})
    for key, actual in (
        ("group", group),
        ("version", version),
        ("kind", o.get("kind", "")),
        ("name", md.get("name", "")),
        ("namespace", md.get("namespace", "")),
    ):
        want = target.get(key)
        if want is not None and not re.fullmatch(str(want), actual or ""):
            return False
    for key in ("labelSelector", "annotationSelector"):
        if key in target:
            raise RenderError(f"patch target {key} is not supported by the offline renderer")
    return True


def render_kustomization(directory: Path, report: Report, stack: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    directory = directory.resolve()
    if directory in stack:
        raise RenderError(f"kustomization cycle through {directory}")
    kfile = find_kustomization(directory)
    if kfile is None:
        raise RenderError(f"{directory}: no kustomization file")
    k = yaml.safe_load(kfile.read_text()) or {}
    unsupported = set(k) - SUPPORTED_KUSTOMIZE_FIELDS
    if unsupported:
        raise RenderError(
            f"{kfile}: fields {sorted(unsupported)} are not supported by the offline renderer "
            "(extend deploy/validate/check_manifests.py or keep the kustomization simple)"
        )
    objs: list[dict[str, Any]] = []
    for res in k.get("resources") or []:
        path = directory / res
        if path.is_dir():
            objs += render_kustomization(path, report, stack + (directory,))
        elif path.is_file():
            objs += load_yaml_docs(path)
        else:
            raise RenderError(f"{kfile}: resource {res!r} does not exist")

    # patches (kustomize applies them before namespace/replicas/images)
    for i, p in enumerate(k.get("patches") or []):
        if "path" in p:
            patch_text = (directory / p["path"]).read_text()
        else:
            patch_text = p.get("patch")
        if not patch_text:
            raise RenderError(f"{kfile}: patches[{i}] has neither patch nor path")
        ops = yaml.safe_load(patch_text)
        if not isinstance(ops, list):
            raise RenderError(f"{kfile}: patches[{i}] is a strategic-merge patch; only JSON6902 is supported offline")
        target = p.get("target")
        if not target:
            raise RenderError(f"{kfile}: patches[{i}] (JSON6902) needs a target")
        hits = [n for n, o in enumerate(objs) if target_matches(target, o)]
        if not hits:
            raise RenderError(f"{kfile}: patches[{i}] target {target} matches no resource")
        for n in hits:
            try:
                objs[n] = jsonpatch.JsonPatch(ops).apply(objs[n])
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                raise RenderError(f"{kfile}: patches[{i}] on {obj_id(objs[n])}: {e}") from e

    ns = k.get("namespace")
    if ns:
        for o in objs:
            md = o.setdefault("metadata", {})
            if o.get("kind") in CLUSTER_SCOPED:
                if o.get("kind") == "Namespace" and md.get("name") != ns:
                    raise RenderError(f"{kfile}: Namespace {md.get('name')!r} differs from namespace: {ns!r}")
                continue
            md["namespace"] = ns

    for r in k.get("replicas") or []:
        hit = False
        for o in objs:
            if o.get("kind") in {"Deployment", "StatefulSet", "ReplicaSet"} and o["metadata"].get("name") == r["name"]:
                o.setdefault("spec", {})["replicas"] = r["count"]
                hit = True
        if not hit:
            raise RenderError(f"{kfile}: replicas entry {r['name']!r} matches no workload")

    for img in k.get("images") or []:
        hit = False
        for o in objs:
            for ps in pod_specs(o):
                for c in all_containers(ps):
                    name, tag, digest = split_image(c.get("image", ""))
                    if name != img["name"]:
                        continue
                    hit = True
                    name = img.get("newName", name)
                    if "newTag" in img:
                        tag, digest = str(img["newTag"]), None
                    if "digest" in img:
                        tag, digest = None, img["digest"]
                    c["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
        if not hit:
            report.info(f"{kfile.relative_to(REPO)}: images entry {img['name']!r} matches no container")
    return objs


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        try:
            subprocess.run(["kubectl", "kustomize", "--help"], check=True, capture_output=True, timeout=60)
            return ["kubectl", "kustomize"]
        except (subprocess.SubprocessError, OSError):
            return None
    return None


def tool_version(cmd: list[str]) -> str:
    try:
        if cmd[0] == "kubectl":
            out = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True, timeout=60).stdout
        else:
            out = subprocess.run(["kustomize", "version"], capture_output=True, text=True, timeout=60).stdout
        return " ".join(out.split())
    except (subprocess.SubprocessError, OSError):
        return "?"


def check_kustomize_refs(report: Report, kdirs: list[Path]) -> None:
    report.start("kustomize references")
    secret_example = REPO / "k8s" / "secret.example.yaml"
    report.check(secret_example.is_file(), "k8s/secret.example.yaml exists")
    for d in kdirs:
        kfile = find_kustomization(d)
        assert kfile is not None
        rel = kfile.relative_to(REPO)
        k = yaml.safe_load(kfile.read_text()) or {}
        report.check(k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and k.get("kind") == "Kustomization",
                     f"{rel}: apiVersion/kind are kustomize.config.k8s.io/v1beta1 Kustomization")
        refs: list[tuple[str, str]] = [("resources", r) for r in k.get("resources") or []]
        refs += [("components", r) for r in k.get("components") or []]
        refs += [("patches", p["path"]) for p in k.get("patches") or [] if "path" in p]
        refs += [("patchesStrategicMerge", p) for p in k.get("patchesStrategicMerge") or [] if isinstance(p, str)]
        for gen in ("configMapGenerator", "secretGenerator"):
            for g in k.get(gen) or []:
                for f in (g.get("files") or []) + (g.get("envs") or []):
                    refs.append((gen, f.split("=", 1)[-1]))
        for field, ref in refs:
            target = (d / ref).resolve()
            exists = target.is_file() or (target.is_dir() and find_kustomization(target) is not None)
            report.check(exists, f"{rel}: {field} -> {ref} exists",
                         f"{rel}: {field} -> {ref} does not exist (or is a directory without a kustomization)")
            report.check(target != secret_example.resolve() and target.name != "secret.example.yaml",
                         f"{rel}: does not reference secret.example.yaml",
                         f"{rel}: references {ref}: the example Secret must never be part of a kustomization")
        if d.name == "base":
            referenced = {(d / r).resolve() for f, r in refs if f == "resources"}
            for y in sorted(list(d.glob("*.yaml")) + list(d.glob("*.yml"))):
                if y.name in KUSTOMIZATION_FILES:
                    continue
                report.check(y.resolve() in referenced, f"{y.relative_to(REPO)} is listed in {rel}",
                             f"{y.relative_to(REPO)} is not listed in {rel} (orphan manifest)")


def render_all(report: Report, kdirs: list[Path]) -> dict[Path, list[dict[str, Any]]]:
    report.start("kustomize render")
    kcmd = kustomize_command()
    if kcmd:
        report.info(f"cross-checking the offline renderer against `{' '.join(kcmd)}` ({tool_version(kcmd)})")
    else:
        report.info("no kustomize/kubectl on PATH: rendering with the offline renderer only")
    rendered: dict[Path, list[dict[str, Any]]] = {}
    for d in kdirs:
        rel = d.relative_to(REPO)
        try:
            objs = render_kustomization(d, report)
        except (RenderError, yaml.YAMLError, OSError) as e:
            report.fail(f"{rel}: offline render failed: {e}")
            continue
        ids = [obj_id(o) for o in objs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        report.check(not dupes, f"{rel}: {len(objs)} objects, no duplicate ids", f"{rel}: duplicate objects {dupes}")
        rendered[d] = objs
        if kcmd:
            proc = subprocess.run([*kcmd, str(d)], capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                report.fail(f"{rel}: `{' '.join(kcmd)}` failed: {proc.stderr.strip()}")
                continue
            real = [o for o in yaml.safe_load_all(proc.stdout) if o is not None]
            mine = {obj_id(o): o for o in objs}
            theirs = {obj_id(o): o for o in real}
            if mine.keys() != theirs.keys():
                report.fail(f"{rel}: renders differ in objects: only offline {sorted(mine.keys() - theirs.keys())}, "
                            f"only kustomize {sorted(theirs.keys() - mine.keys())}")
                continue
            diffs = [i for i in mine if mine[i] != theirs[i]]
            if diffs:
                for i in diffs[:3]:
                    report.info(f"{i} offline: {json.dumps(mine[i], sort_keys=True)[:400]}")
                    report.info(f"{i} kustomize: {json.dumps(theirs[i], sort_keys=True)[:400]}")
            report.check(not diffs, f"{rel}: offline render == kustomize render",
                         f"{rel}: offline render differs from kustomize for {diffs}")
            # From here on use kustomize's output: it is the reference implementation.
            rendered[d] = real
    return rendered


# ---------------------------------------------------------------------------
# Kubernetes schemas
# ---------------------------------------------------------------------------
def check_schemas(report: Report, rendered: dict[Path, list[dict[str, Any]]], versions: list[str]) -> None:
    report.start("kubernetes schemas (strict)")
    from kubernetes_validate.version import __version__ as kv_version
    report.info(f"kubernetes-validate {kv_version} (bundled schemas {kv.all_versions()[0]}..{kv.latest_version()}) "
                f"against Kubernetes {', '.join(versions)}")
    items: list[tuple[str, dict[str, Any]]] = []
    for d, objs in rendered.items():
        items += [(str(d.relative_to(REPO)), o) for o in objs]
    example = REPO / "k8s" / "secret.example.yaml"
    if example.is_file():
        items += [(str(example.relative_to(REPO)), o) for o in load_yaml_docs(example)]
    for version in versions:
        for where, o in items:
            label = f"{where}: {obj_id(o)} @ {version}"
            try:
                kv.validate(o, version, strict=True)
                report.ok(label)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                report.fail(f"{label}: {path}: {e.message}")
            except (kv.SchemaNotFoundError, kv.InvalidSchemaError, kv.VersionNotSupportedError) as e:
                report.fail(f"{label}: {e.message}")


# ---------------------------------------------------------------------------
# Kubernetes semantics
# ---------------------------------------------------------------------------
def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def env_map(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in container.get("env") or []:
        out[e["name"]] = e
    return out


def expected_env(kind: str) -> tuple[set[str], set[str]]:
    if kind == GATEWAY:
        return GATEWAY_ENV_REQUIRED, GATEWAY_ENV_REQUIRED | AUTH_KEY_ENV | OPTIONAL_ENV | GATEWAY_ENV_OPTIONAL
    return SERVICE_ENV_REQUIRED, (SERVICE_ENV_REQUIRED | AUTH_KEY_ENV | OPTIONAL_ENV | SERVICE_ENV_OPTIONAL
                                  | SERVICE_SPECIFIC_ENV.get(kind, set()))


def check_k8s_env(report: Report, where: str, binary: str, c: dict[str, Any], cm_data: dict[str, str],
                  secret_keys: set[str], migrate: bool) -> None:
    env = env_map(c)
    names = set(env)
    required, allowed = expected_env(binary)
    report.check(required <= names, f"{where}: required env present",
                 f"{where}: missing env {sorted(required - names)}")
    report.check(names <= allowed, f"{where}: no unknown env",
                 f"{where}: unknown env {sorted(names - allowed)} (typo? the contract is in docs/operations.md)")
    report.check(bool(names & AUTH_KEY_ENV), f"{where}: has a JWT key source",
                 f"{where}: neither MKT_AUTH__HS256_SECRET nor MKT_AUTH__JWKS_URL")
    for name, e in env.items():
        vf = e.get("valueFrom")
        if not vf:
            continue
        if "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            report.check(ref.get("name") == CONFIGMAP, f"{where}: {name} from ConfigMap {CONFIGMAP}",
                         f"{where}: {name} references ConfigMap {ref.get('name')!r}, expected {CONFIGMAP}")
            if not ref.get("optional"):
                report.check(ref.get("key") in cm_data, f"{where}: {name} -> ConfigMap key {ref.get('key')} exists",
                             f"{where}: {name} -> ConfigMap key {ref.get('key')!r} missing (and not optional)")
        elif "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            report.check(ref.get("name") == SECRET, f"{where}: {name} from Secret {SECRET}",
                         f"{where}: {name} references Secret {ref.get('name')!r}, expected {SECRET}")
            report.check(ref.get("key") in secret_keys, f"{where}: {name} -> Secret key {ref.get('key')} documented",
                         f"{where}: {name} -> Secret key {ref.get('key')!r} is not in k8s/secret.example.yaml")
            if ref.get("key") in SECRET_KEYS_OPTIONAL:
                report.check(ref.get("optional") is True, f"{where}: {name} secret ref optional",
                             f"{where}: {name} -> {ref.get('key')} must be referenced with optional: true")
        else:
            report.fail(f"{where}: {name} uses unsupported valueFrom {sorted(vf)}")

    def value(name: str) -> str | None:
        e = env.get(name)
        if e is None:
            return None
        if "value" in e:
            return str(e["value"])
        ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            return cm_data.get(ref.get("key"))
        return None

    port = GATEWAY_PORT if binary == GATEWAY else SERVICES[binary][0]
    report.check(value("MKT_HTTP__ADDR") == f"0.0.0.0:{port}", f"{where}: MKT_HTTP__ADDR = 0.0.0.0:{port}",
                 f"{where}: MKT_HTTP__ADDR is {value('MKT_HTTP__ADDR')!r}, expected 0.0.0.0:{port}")
    report.check(value("OTEL_SERVICE_NAME") == binary, f"{where}: OTEL_SERVICE_NAME = {binary}",
                 f"{where}: OTEL_SERVICE_NAME is {value('OTEL_SERVICE_NAME')!r}, expected {binary}")
    report.check(value("MKT_TELEMETRY__LOG_FORMAT") in {"json", "pretty"}, f"{where}: log format json|pretty",
                 f"{where}: MKT_TELEMETRY__LOG_FORMAT is {value('MKT_TELEMETRY__LOG_FORMAT')!r}")
    if binary == GATEWAY:
        for s, (sport, _) in SERVICES.items():
            report.check(value(upstream_env(s)) == f"http://{s}:{sport}", f"{where}: {upstream_env(s)} -> {s}:{sport}",
                         f"{where}: {upstream_env(s)} is {value(upstream_env(s))!r}, expected http://{s}:{sport}")
        report.check((value("MKT_UPSTREAMS__TIMEOUT_MS") or "").isdigit(), f"{where}: upstream timeout numeric",
                     f"{where}: MKT_UPSTREAMS__TIMEOUT_MS is not a number")
        return
    schema = SERVICES[binary][1]
    report.check(value("MKT_DATABASE__SCHEMA") == schema, f"{where}: MKT_DATABASE__SCHEMA = {schema}",
                 f"{where}: MKT_DATABASE__SCHEMA is {value('MKT_DATABASE__SCHEMA')!r}, expected {schema}")
    db = (env.get("MKT_DATABASE__URL", {}).get("valueFrom") or {}).get("secretKeyRef", {})
    report.check(db.get("key") == f"{binary}-database-url", f"{where}: database URL from {binary}-database-url",
                 f"{where}: MKT_DATABASE__URL comes from {db.get('key')!r}, expected {binary}-database-url")
    bus = (env.get("MKT_BUS__URL", {}).get("valueFrom") or {}).get("secretKeyRef", {})
    report.check(bus.get("key") == "amqp-url", f"{where}: MKT_BUS__URL from amqp-url",
                 f"{where}: MKT_BUS__URL comes from {bus.get('key')!r}, expected amqp-url")
    for n in ("MKT_DATABASE__POOL_SIZE", "MKT_DATABASE__STATEMENT_TIMEOUT_MS"):
        report.check((value(n) or "").isdigit(), f"{where}: {n} numeric", f"{where}: {n} is {value(n)!r}, not a number")
    if not migrate:
        report.check(value("MKT_RUN_MIGRATIONS") == "false", f"{where}: MKT_RUN_MIGRATIONS=false (the Job migrates)",
                     f"{where}: MKT_RUN_MIGRATIONS is {value('MKT_RUN_MIGRATIONS')!r}; Deployments must set \"false\" "
                     "(migrations run in Job/marketing-migrate before the rollout)")


def check_container_hardening(report: Report, where: str, pod: dict[str, Any], c: dict[str, Any]) -> None:
    psc = pod.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
    report.check(non_root is True, f"{where}: runAsNonRoot", f"{where}: runAsNonRoot is not true")
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    report.check(uid is None or uid != 0, f"{where}: runAsUser non-zero", f"{where}: runAsUser 0")
    report.check(csc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem",
                 f"{where}: readOnlyRootFilesystem is not true")
    report.check(csc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false",
                 f"{where}: allowPrivilegeEscalation is not false")
    report.check("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), f"{where}: drops ALL capabilities",
                 f"{where}: capabilities.drop does not contain ALL")
    seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    report.check(seccomp in {"RuntimeDefault", "Localhost"}, f"{where}: seccomp profile",
                 f"{where}: no RuntimeDefault seccompProfile")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            report.check(r in (res.get(part) or {}), f"{where}: resources.{part}.{r}",
                         f"{where}: resources.{part}.{r} missing")
    mounts = {m.get("mountPath") for m in c.get("volumeMounts") or []}
    report.check("/tmp" in mounts, f"{where}: writable /tmp mounted",
                 f"{where}: no /tmp volume (root filesystem is read-only)")
    report.check(c.get("image", "").rsplit("/", 1)[-1].split(":")[0].split("@")[0] == IMAGE_BASENAME,
                 f"{where}: image {c.get('image')}", f"{where}: image {c.get('image')!r} is not the {IMAGE_BASENAME} image")


def check_k8s_semantics(report: Report, rel: str, objs: list[dict[str, Any]], secret_keys: set[str]) -> None:
    report.start(f"kubernetes cross-references ({rel})")
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
        if o["kind"] not in CLUSTER_SCOPED:
            report.check(o["metadata"].get("namespace") == NAMESPACE, f"{obj_id(o)} in namespace {NAMESPACE}",
                         f"{obj_id(o)} is not in namespace {NAMESPACE}")
        report.check(o["kind"] != "Secret", f"{obj_id(o)} is not a Secret",
                     f"{obj_id(o)}: Secrets must not be part of the kustomization (see k8s/secret.example.yaml)")
    report.check(NAMESPACE in by_kind.get("Namespace", {}), f"Namespace {NAMESPACE} present")
    cm = by_kind.get("ConfigMap", {}).get(CONFIGMAP)
    report.check(cm is not None, f"ConfigMap {CONFIGMAP} present")
    cm_data: dict[str, str] = (cm or {}).get("data") or {}
    for k, v in cm_data.items():
        report.check(isinstance(v, str), f"ConfigMap key {k} is a string", f"ConfigMap key {k} is not a string")

    images: set[str] = set()
    deployments = by_kind.get("Deployment", {})
    services = by_kind.get("Service", {})
    report.check(set(deployments) == set(BINARIES), "one Deployment per binary",
                 f"Deployments {sorted(deployments)} != {sorted(BINARIES)}")
    for name in BINARIES:
        dep = deployments.get(name)
        if dep is None:
            continue
        where = f"Deployment/{name}"
        spec = dep["spec"]
        tmpl_labels = spec["template"]["metadata"].get("labels") or {}
        report.check(selector_matches(spec["selector"].get("matchLabels") or {}, tmpl_labels),
                     f"{where}: selector matches pod labels")
        pod = spec["template"]["spec"]
        containers = pod.get("containers") or []
        report.check(len(containers) == 1, f"{where}: one container", f"{where}: {len(containers)} containers")
        if not containers:
            continue
        c = containers[0]
        images.add(c.get("image"))
        port = GATEWAY_PORT if name == GATEWAY else SERVICES[name][0]
        report.check(c.get("command") == [f"/usr/local/bin/{name}"], f"{where}: runs /usr/local/bin/{name}",
                     f"{where}: command is {c.get('command')!r}")
        report.check(not c.get("args"), f"{where}: no args (serve is the default)", f"{where}: unexpected args {c.get('args')}")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        report.check(ports.get("http") == port, f"{where}: port http={port}", f"{where}: ports {ports}, expected http={port}")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            hg = ((c.get(probe) or {}).get("httpGet")) or {}
            report.check(hg.get("path") == path and hg.get("port") in ("http", port), f"{where}: {probe} GET {path} on http",
                         f"{where}: {probe} is {c.get(probe)!r}, expected httpGet {path} on port http")
        sp = ((c.get("startupProbe") or {}).get("httpGet")) or {}
        if sp:
            report.check(sp.get("path") == "/healthz", f"{where}: startupProbe on /healthz",
                         f"{where}: startupProbe should use /healthz (no dependencies), not {sp.get('path')}")
        check_container_hardening(report, where, pod, c)
        check_k8s_env(report, where, name, c, cm_data, secret_keys, migrate=False)
        svc = services.get(name)
        if report.check(svc is not None, f"Service/{name} present", f"Service/{name} missing for Deployment/{name}"):
            sspec = svc["spec"]
            report.check(selector_matches(sspec.get("selector") or {}, tmpl_labels), f"Service/{name}: selects its pods",
                         f"Service/{name}: selector {sspec.get('selector')} does not match Deployment/{name} pod labels")
            sports = sspec.get("ports") or []
            ok = any(p.get("port") == port and p.get("targetPort") in ("http", port) and p.get("name") == "http" for p in sports)
            report.check(ok, f"Service/{name}: port http {port} -> http", f"Service/{name}: ports {sports}")
    report.check(len(images) == 1, f"all Deployments use one image ({', '.join(sorted(filter(None, images)))})",
                 f"Deployments use several images: {sorted(filter(None, images))}")
    extra_services = set(services) - set(BINARIES)
    report.check(not extra_services, "no stray Services", f"Services without a Deployment: {sorted(extra_services)}")

    # ConfigMap upstream URLs agree with the Services
    for s, (port, _) in SERVICES.items():
        report.check(cm_data.get(f"upstream-{s}") == f"http://{s}:{port}", f"ConfigMap upstream-{s} -> http://{s}:{port}",
                     f"ConfigMap upstream-{s} is {cm_data.get(f'upstream-{s}')!r}")

    # Migration Job
    job = by_kind.get("Job", {}).get("marketing-migrate")
    if report.check(job is not None, "Job/marketing-migrate present"):
        pod = job["spec"]["template"]["spec"]
        report.check(pod.get("restartPolicy") in {"Never", "OnFailure"}, "Job: restartPolicy Never/OnFailure")
        seq = all_containers(pod)
        ran = []
        for c in seq:
            cmd = c.get("command") or []
            where = f"Job/marketing-migrate/{c.get('name')}"
            m = re.fullmatch(r"/usr/local/bin/([a-z-]+)", cmd[0]) if cmd else None
            if not (m and m.group(1) in SERVICES and cmd[1:] == ["migrate"]):
                report.fail(f"{where}: command {cmd!r} is not `/usr/local/bin/<service> migrate`")
                continue
            svc_name = m.group(1)
            ran.append(svc_name)
            images.add(c.get("image"))
            check_container_hardening(report, where, pod, c)
            check_k8s_env(report, where, svc_name, c, cm_data, secret_keys, migrate=True)
        report.check(sorted(ran) == sorted(SERVICES) and len(ran) == len(set(ran)),
                     f"Job runs every service's migrate once, in order: {' -> '.join(ran)}",
                     f"Job migrates {ran}, expected each of {sorted(SERVICES)} exactly once")
        report.check(len(pod.get("containers") or []) == 1, "Job: one main container after the init containers")
    report.check(len(images) == 1, "Job and Deployments use the same image", f"several images: {sorted(filter(None, images))}")

    # Ingress
    ingresses = by_kind.get("Ingress", {})
    report.check(len(ingresses) >= 1, "an Ingress is present")
    for iname, ing in ingresses.items():
        spec = ing["spec"]
        report.check(spec.get("ingressClassName") == INGRESS_CLASS, f"Ingress/{iname}: class {INGRESS_CLASS}")
        hosts = [r.get("host") for r in spec.get("rules") or []]
        report.check(INGRESS_HOST in hosts, f"Ingress/{iname}: host {INGRESS_HOST}", f"Ingress/{iname}: hosts {hosts}")
        for r in spec.get("rules") or []:
            for p in (r.get("http") or {}).get("paths") or []:
                b = p["backend"]["service"]
                svc = services.get(b["name"])
                report.check(b["name"] == GATEWAY, f"Ingress/{iname}: routes to the gateway",
                             f"Ingress/{iname}: routes to {b['name']} (only the gateway is public)")
                if report.check(svc is not None, f"Ingress/{iname}: backend Service {b['name']} exists"):
                    pnames = {sp.get("name") for sp in svc["spec"]["ports"]}
                    pnums = {sp.get("port") for sp in svc["spec"]["ports"]}
                    want = b.get("port", {})
                    report.check(want.get("name") in pnames or want.get("number") in pnums,
                                 f"Ingress/{iname}: backend port {want} exists on Service/{b['name']}")

    # PDBs, HPAs, NetworkPolicies
    pod_labels = {n: d["spec"]["template"]["metadata"].get("labels") or {} for n, d in deployments.items()}
    pdbs = by_kind.get("PodDisruptionBudget", {})
    covered = set()
    for n, pdb in pdbs.items():
        sel = (pdb["spec"].get("selector") or {}).get("matchLabels") or {}
        hits = {d for d, labels in pod_labels.items() if selector_matches(sel, labels)}
        covered |= hits
        report.check(len(hits) == 1, f"PodDisruptionBudget/{n} selects exactly {sorted(hits)}",
                     f"PodDisruptionBudget/{n} selects {sorted(hits)} (expected exactly one Deployment)")
        report.check(("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"]),
                     f"PodDisruptionBudget/{n}: exactly one of minAvailable/maxUnavailable")
    report.check(GATEWAY in covered, "the gateway has a PodDisruptionBudget")
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    for n, hpa in hpas.items():
        ref = hpa["spec"]["scaleTargetRef"]
        target = deployments.get(ref.get("name")) if ref.get("kind") == "Deployment" else None
        if report.check(target is not None, f"HorizontalPodAutoscaler/{n} targets an existing Deployment",
                        f"HorizontalPodAutoscaler/{n} targets missing {ref}"):
            report.check(hpa["spec"].get("minReplicas", 1) <= hpa["spec"]["maxReplicas"], f"HPA/{n}: min <= max")
            if rel == "k8s/base":
                report.check("replicas" not in target["spec"],
                             f"Deployment/{ref['name']} leaves replicas to HorizontalPodAutoscaler/{n}",
                             f"Deployment/{ref['name']} sets spec.replicas although HorizontalPodAutoscaler/{n} manages it")
    for n, np_ in by_kind.get("NetworkPolicy", {}).items():
        sel = np_["spec"]["podSelector"].get("matchLabels") or {}
        hits = [d for d, labels in pod_labels.items() if selector_matches(sel, labels)]
        report.check(bool(hits), f"NetworkPolicy/{n} selects {hits}", f"NetworkPolicy/{n} selects no Deployment")
        for rule in np_["spec"].get("ingress") or []:
            for peer in rule.get("from") or []:
                psel = (peer.get("podSelector") or {}).get("matchLabels")
                if psel is not None:
                    report.check(any(selector_matches(psel, labels) for labels in pod_labels.values()),
                                 f"NetworkPolicy/{n}: peer selector matches a workload",
                                 f"NetworkPolicy/{n}: peer selector {psel} matches nothing")
            for p in rule.get("ports") or []:
                if isinstance(p.get("port"), str):
                    named = all(any(cp.get("name") == p["port"] for c in deployments[d]["spec"]["template"]["spec"]["containers"]
                                    for cp in c.get("ports") or []) for d in hits)
                    report.check(named, f"NetworkPolicy/{n}: named port {p['port']} exists on the selected pods")


def secret_example_keys(report: Report) -> set[str]:
    report.start("k8s/secret.example.yaml")
    path = REPO / "k8s" / "secret.example.yaml"
    if not path.is_file():
        report.fail("k8s/secret.example.yaml is missing")
        return set()
    docs = load_yaml_docs(path)
    secrets = [d for d in docs if d.get("kind") == "Secret" and d["metadata"]["name"] == SECRET]
    if not report.check(len(secrets) == 1, f"defines Secret {SECRET}"):
        return set()
    s = secrets[0]
    data = dict(s.get("stringData") or {})
    keys = set(data) | set(s.get("data") or {})
    report.check(SECRET_KEYS_REQUIRED <= keys, "has every key the manifests need",
                 f"missing keys {sorted(SECRET_KEYS_REQUIRED - keys)}")
    report.check(not s.get("data"), "uses stringData placeholders only (no base64 data)")
    for k, v in data.items():
        report.check("CHANGE_ME" in str(v), f"{k} is a placeholder", f"{k} does not look like a placeholder (CHANGE_ME)")
    for s_name, (_, role) in SERVICES.items():
        url = data.get(f"{s_name}-database-url", "")
        report.check(re.match(rf"^postgres(ql)?://{role}:[^@]+@[^/]+/{DATABASE}(\?.*)?$", url) is not None,
                     f"{s_name}-database-url uses role {role} and database {DATABASE}",
                     f"{s_name}-database-url {url!r} should be postgres://{role}:...@host:5432/{DATABASE}")
    report.check(str(data.get("amqp-url", "")).startswith(("amqp://", "amqps://")), "amqp-url is an AMQP URL")
    return keys


# ---------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------
INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(v: Any) -> Any:
    """Compose-style ${VAR:-default} with the defaults (the host environment is ignored)."""
    if isinstance(v, str):
        return INTERP.sub(lambda m: m.group(2) or "", v)
    return v


def check_compose(report: Report) -> None:
    report.start("docker-compose.yml")
    path = REPO / "docker-compose.yml"
    raw = path.read_text()
    compose = yaml.safe_load(raw)
    svcs: dict[str, dict[str, Any]] = compose.get("services") or {}
    migrate = {f"{s}-migrate" for s in SERVICES}
    expected = {"postgres", "rabbitmq", GATEWAY, *SERVICES, *migrate}
    report.check(set(svcs) == expected, "services: postgres, rabbitmq, 5 migrations, 5 services, gateway",
                 f"services {sorted(svcs)} != {sorted(expected)}")
    report.check("version" not in compose, "no obsolete top-level `version:`")

    pg = svcs.get("postgres", {})
    report.check(str(pg.get("image", "")).startswith("postgres:15"), "postgres:15")
    report.check(interpolate((pg.get("environment") or {}).get("POSTGRES_DB")) == DATABASE, f"POSTGRES_DB={DATABASE}")
    mounts = [str(v) for v in pg.get("volumes") or []]
    init = [m for m in mounts if "/docker-entrypoint-initdb.d" in m]
    report.check(any(m.startswith("./deploy/postgres/init.sql:") for m in init), "postgres mounts deploy/postgres/init.sql into /docker-entrypoint-initdb.d",
                 f"postgres init mounts {init}")
    report.check((REPO / "deploy/postgres/init.sql").is_file(), "deploy/postgres/init.sql exists")
    pg_hc = " ".join(map(str, (pg.get("healthcheck") or {}).get("test") or []))
    report.check("pg_isready" in pg_hc and "-h" in pg_hc, "postgres healthcheck: pg_isready over TCP",
                 f"postgres healthcheck {pg_hc!r} (needs pg_isready -h ... so it waits for init.sql)")
    rmq = svcs.get("rabbitmq", {})
    m = re.match(r"rabbitmq:(\d+)\.(\d+)", str(rmq.get("image", "")))
    report.check(bool(m) and (int(m.group(1)), int(m.group(2))) >= (3, 10), f"rabbitmq >= 3.10 ({rmq.get('image')})")
    rmq_hc = (rmq.get("healthcheck") or {}).get("test") or []
    report.check(rmq_hc[1:] == ["rabbitmq-diagnostics", "-q", "ping"], "rabbitmq healthcheck: rabbitmq-diagnostics -q ping",
                 f"rabbitmq healthcheck {rmq_hc}")
    renv = rmq.get("environment") or {}
    amqp_user, amqp_pw = interpolate(renv.get("RABBITMQ_DEFAULT_USER")), interpolate(renv.get("RABBITMQ_DEFAULT_PASS"))

    app = [n for n in svcs if n not in ("postgres", "rabbitmq")]
    images = {svcs[n].get("image") for n in app}
    report.check(len(images) == 1, f"one application image for all app containers ({images})")
    for n in app:
        b = svcs[n].get("build") or {}
        report.check(b.get("dockerfile") == "deploy/Dockerfile" and b.get("context") in (".", "./"),
                     f"{n}: builds deploy/Dockerfile from the repo root", f"{n}: build {b}")
        report.check(svcs[n].get("read_only") is True, f"{n}: read_only root filesystem")
        report.check(any(str(t).startswith("/tmp") for t in svcs[n].get("tmpfs") or []), f"{n}: tmpfs /tmp")

    dev_passwords = init_sql_dev_passwords()

    def check_env(n: str, binary: str, env: dict[str, Any], migrate: bool = False) -> None:
        required, allowed = expected_env(binary)
        names = set(env)
        report.check(required <= names, f"{n}: required env present", f"{n}: missing env {sorted(required - names)}")
        report.check(names <= allowed, f"{n}: no unknown env", f"{n}: unknown env {sorted(names - allowed)}")
        report.check("MKT_AUTH__HS256_SECRET" in names, f"{n}: dev HS256 secret set")
        report.check(str(env.get("MKT_AUTH__HS256_SECRET", "")).startswith("${MKT_DEV_JWT_SECRET:-"),
                     f"{n}: HS256 secret from ${{MKT_DEV_JWT_SECRET:-...}}",
                     f"{n}: MKT_AUTH__HS256_SECRET should be ${{MKT_DEV_JWT_SECRET:-<dev default>}}")
        if len(interpolate(env.get("MKT_AUTH__HS256_SECRET", ""))) < 32:
            report.fail(f"{n}: the dev HS256 default should be at least 32 bytes")
        port = GATEWAY_PORT if binary == GATEWAY else SERVICES[binary][0]
        report.check(interpolate(env.get("MKT_HTTP__ADDR")) == f"0.0.0.0:{port}", f"{n}: MKT_HTTP__ADDR 0.0.0.0:{port}",
                     f"{n}: MKT_HTTP__ADDR is {env.get('MKT_HTTP__ADDR')!r}")
        report.check(env.get("OTEL_SERVICE_NAME") == binary, f"{n}: OTEL_SERVICE_NAME={binary}")
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
            report.check(env["OTEL_EXPORTER_OTLP_ENDPOINT"] is None or bool(interpolate(env["OTEL_EXPORTER_OTLP_ENDPOINT"])),
                         f"{n}: OTLP endpoint unset unless provided",
                         f"{n}: OTEL_EXPORTER_OTLP_ENDPOINT must not default to an empty string")
        report.check(interpolate(env.get("MKT_TELEMETRY__LOG_FORMAT")) in {"json", "pretty"}, f"{n}: log format json|pretty")
        if binary == GATEWAY:
            for s, (sport, _) in SERVICES.items():
                report.check(env.get(upstream_env(s)) == f"http://{s}:{sport}", f"{n}: {upstream_env(s)} -> {s}:{sport}",
                             f"{n}: {upstream_env(s)} is {env.get(upstream_env(s))!r}")
            return
        schema = SERVICES[binary][1]
        report.check(env.get("MKT_DATABASE__SCHEMA") == schema, f"{n}: MKT_DATABASE__SCHEMA={schema}")
        url = str(interpolate(env.get("MKT_DATABASE__URL", "")))
        m = re.fullmatch(r"postgres(?:ql)?://([^:]+):([^@]+)@postgres:5432/([^?]+)", url)
        report.check(bool(m) and m.group(1) == schema and m.group(3) == DATABASE,
                     f"{n}: database URL uses role {schema} on postgres:5432/{DATABASE}", f"{n}: database URL {url!r}")
        if m and dev_passwords:
            report.check(dev_passwords.get(schema) == m.group(2), f"{n}: password matches init.sql's dev default",
                         f"{n}: password {m.group(2)!r} != init.sql dev default {dev_passwords.get(schema)!r}")
        bus = str(interpolate(env.get("MKT_BUS__URL", "")))
        report.check(bus == f"amqp://{amqp_user}:{amqp_pw}@rabbitmq:5672/%2f", f"{n}: MKT_BUS__URL matches the rabbitmq service",
                     f"{n}: MKT_BUS__URL {bus!r} does not match rabbitmq's credentials")
        for k in ("MKT_DATABASE__POOL_SIZE", "MKT_DATABASE__STATEMENT_TIMEOUT_MS"):
            report.check(str(interpolate(env.get(k, ""))).isdigit(), f"{n}: {k} numeric")
        if not migrate:
            report.check(str(interpolate(env.get("MKT_RUN_MIGRATIONS"))) == "false", f"{n}: MKT_RUN_MIGRATIONS=false",
                         f"{n}: MKT_RUN_MIGRATIONS must be \"false\" (the {binary}-migrate one-shot migrates)")

    def deps(n: str) -> dict[str, str]:
        d = svcs[n].get("depends_on") or {}
        if isinstance(d, list):
            return {x: "service_started" for x in d}
        return {k: (v or {}).get("condition", "service_started") for k, v in d.items()}

    for s, (port, _) in SERVICES.items():
        mname = f"{s}-migrate"
        if mname in svcs:
            mig = svcs[mname]
            report.check(mig.get("command") == [s, "migrate"], f"{mname}: runs `{s} migrate`", f"{mname}: command {mig.get('command')}")
            report.check(deps(mname).get("postgres") == "service_healthy", f"{mname}: waits for healthy postgres")
            report.check(str(mig.get("restart", "no")) == "no", f"{mname}: is one-shot (restart: \"no\")")
            check_env(mname, s, mig.get("environment") or {}, migrate=True)
        if s not in svcs:
            continue
        svc = svcs[s]
        report.check(svc.get("command") == [s], f"{s}: runs `{s}`", f"{s}: command {svc.get('command')}")
        d = deps(s)
        report.check(d.get(mname) == "service_completed_successfully", f"{s}: waits for {mname} to complete successfully",
                     f"{s}: depends_on {mname} must use condition service_completed_successfully")
        report.check(d.get("postgres") == "service_healthy" and d.get("rabbitmq") == "service_healthy",
                     f"{s}: waits for healthy postgres and rabbitmq")
        hc = (svc.get("healthcheck") or {}).get("test") or []
        report.check(f"http://127.0.0.1:{port}/readyz" in hc and "curl" in hc and "-f" in "".join(hc),
                     f"{s}: healthcheck curls /readyz on {port}", f"{s}: healthcheck {hc}")
        report.check(not svc.get("ports"), f"{s}: not published (only the gateway is)")
        check_env(s, s, svc.get("environment") or {})
    gw = svcs.get(GATEWAY, {})
    ports = [str(interpolate(p)) for p in gw.get("ports") or []]
    report.check(any(p.endswith(f"{GATEWAY_PORT}:{GATEWAY_PORT}") for p in ports), f"gateway published on {GATEWAY_PORT}", f"gateway ports {ports}")
    hc = (gw.get("healthcheck") or {}).get("test") or []
    report.check(f"http://127.0.0.1:{GATEWAY_PORT}/readyz" in hc, "gateway healthcheck on /readyz", f"gateway healthcheck {hc}")
    check_env(GATEWAY, GATEWAY, gw.get("environment") or {})
    gd = deps(GATEWAY) if GATEWAY in svcs else {}
    report.check(all(gd.get(s) in ("service_healthy", "service_started") for s in SERVICES), "gateway starts after the services")
    # The runtime image must provide what the healthchecks execute.
    if any("curl" in ((svcs[n].get("healthcheck") or {}).get("test") or []) for n in app):
        dockerfile = (REPO / "deploy/Dockerfile").read_text()
        report.check(re.search(r"apt-get install[^\n]*\bcurl\b", dockerfile) is not None,
                     "runtime image installs curl (used by the compose healthchecks)",
                     "compose healthchecks use curl but deploy/Dockerfile does not install it")


def init_sql_dev_passwords() -> dict[str, str]:
    text = (REPO / "deploy/postgres/init.sql").read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"\\set (\w+)_password '([^']*)'", text)}


# ---------------------------------------------------------------------------
# Dockerfile, .dockerignore, init.sql
# ---------------------------------------------------------------------------
def workspace_binaries() -> dict[str, Path]:
    """Package name -> directory, for workspace members that have src/main.rs."""
    ws = tomllib.loads((REPO / "Cargo.toml").read_text())
    out: dict[str, Path] = {}
    for pattern in ws.get("workspace", {}).get("members", []):
        for d in sorted(REPO.glob(pattern)):
            manifest = d / "Cargo.toml"
            if manifest.is_file():
                pkg = tomllib.loads(manifest.read_text()).get("package", {})
                bins = tomllib.loads(manifest.read_text()).get("bin", [])
                if (d / "src/main.rs").is_file() or bins:
                    out[pkg.get("name", d.name)] = d
    return out


def check_dockerfile(report: Report) -> None:
    report.start("deploy/Dockerfile and .dockerignore")
    df = (REPO / "deploy/Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", df, flags=re.M | re.I)
    report.check(len(froms) >= 2, "multi-stage build", f"stages: {froms}")
    report.check(bool(froms) and froms[0][0].startswith("rust:"), f"builder stage from rust ({froms[0][0] if froms else '-'})")
    report.check(bool(froms) and re.match(r"debian:(\$\{DEBIAN_SUITE\}|bookworm)-slim", froms[-1][0]) is not None,
                 f"runtime stage from debian:bookworm-slim ({froms[-1][0] if froms else '-'})")
    suite = re.search(r"^ARG DEBIAN_SUITE=(\S+)", df, flags=re.M)
    report.check(suite is not None and suite.group(1) == "bookworm", "DEBIAN_SUITE defaults to bookworm")
    rust = re.search(r"^ARG RUST_VERSION=(\d+)\.(\d+)", df, flags=re.M)
    ws = tomllib.loads((REPO / "Cargo.toml").read_text())
    msrv = ws.get("workspace", {}).get("package", {}).get("rust-version", "1.85")
    mv = tuple(int(x) for x in msrv.split(".")[:2])
    report.check(rust is not None and (int(rust.group(1)), int(rust.group(2))) >= mv,
                 f"builder Rust {rust.group(1) + '.' + rust.group(2) if rust else '?'} >= workspace rust-version {msrv}")
    report.check("--mount=type=cache,id=mkt-cargo-registry,target=/usr/local/cargo/registry" in df
                 and re.search(r"--mount=type=cache[^\s]*target=/src/target", df) is not None,
                 "BuildKit cache mounts for the cargo registry and target/")
    report.check(re.search(r"cargo build --release --locked", df) is not None, "cargo build --release --locked")
    bins = workspace_binaries()
    for b in BINARIES:
        report.check(b in bins, f"workspace has a binary package {b}", f"no workspace package {b} with src/main.rs")
        report.check(f"-p {b}" in df, f"Dockerfile builds -p {b}")
    loop = re.search(r"for bin in ([^;]+);", df)
    report.check(loop is not None and set(loop.group(1).split()) == set(BINARIES), "Dockerfile copies all six binaries",
                 f"binary copy loop {loop.group(1) if loop else None!r}")
    user = re.findall(r"^USER\s+(\S+)", df, flags=re.M)
    report.check(bool(user) and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0",
                 f"runtime runs as numeric non-root user ({user[-1] if user else '-'})")
    report.check(re.search(r"apt-get install[^\n]*ca-certificates", df) is not None, "runtime installs ca-certificates")
    report.check(re.search(r"^(ENTRYPOINT|CMD)\b", df, flags=re.M) is None,
                 "no ENTRYPOINT/CMD: each container names its binary")
    for port in [GATEWAY_PORT, *(p for p, _ in SERVICES.values())]:
        report.check(re.search(rf"^EXPOSE\b.*\b{port}\b", df, flags=re.M) is not None, f"EXPOSE {port}")

    di = REPO / ".dockerignore"
    if not report.check(di.is_file(), ".dockerignore exists"):
        return
    lines = [ln.strip() for ln in di.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    norm = {ln.strip("/") for ln in lines}
    for need in ("target", ".dev", ".git"):
        report.check(need in norm, f".dockerignore excludes {need}/")
    for keep in ("Cargo.toml", "Cargo.lock", "crates", "services", "gateway", "proto", "xtask", "e2e", ".cargo"):
        if (REPO / keep).exists():
            report.check(keep not in norm and f"{keep}/**" not in norm,
                         f".dockerignore keeps {keep} (needed by cargo)", f".dockerignore excludes {keep}, which the build needs")
    report.check(not any(ln in ("*", "**") for ln in lines), ".dockerignore is not an allow-list (kept simple)")


def check_init_sql(report: Report) -> None:
    report.start("deploy/postgres/init.sql (static)")
    sql = (REPO / "deploy/postgres/init.sql").read_text()
    flat = re.sub(r"\s+", " ", sql)
    created = re.search(r"CREATE ROLE %I LOGIN[^\n]*?FROM unnest\(ARRAY\[([^\]]*)\]\) AS r WHERE NOT EXISTS", flat)
    created_roles = set(re.findall(r"'(\w+)'", created.group(1))) if created else set()
    for _, (_, role) in SERVICES.items():
        report.check(role in created_roles, f"creates role {role}")
        report.check(re.search(rf"ALTER ROLE {role} +LOGIN PASSWORD :'{role}_password'", sql) is not None,
                     f"sets {role}'s password from psql variable {role}_password")
        report.check(re.search(rf"ALTER ROLE {role} +SET search_path = {role};", sql) is not None,
                     f"ALTER ROLE {role} SET search_path = {role}")
        report.check(re.search(rf"CREATE SCHEMA IF NOT EXISTS {role} +AUTHORIZATION {role};", sql) is not None,
                     f"schema {role} owned by {role}")
        report.check(re.search(rf"\\set {role}_password '{role}-dev'", sql) is not None,
                     f"{role} has a dev-only default password")
    report.check("REVOKE CREATE ON SCHEMA public FROM PUBLIC;" in sql, "revokes CREATE on public from PUBLIC")
    report.check(re.search(r"REVOKE ALL ON SCHEMA ingestion, segmentation, campaign, webhook, cdp_analytics FROM PUBLIC;", sql)
                 is not None, "revokes PUBLIC's rights on the service schemas")
    report.check("DEV-ONLY" in sql, "dev-only passwords are marked DEV-ONLY")
    report.check("\\connect marketing" in sql, "connects to the marketing database")


# ---------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]))
    parser.add_argument("--k8s-version", action="append", dest="versions",
                        help="Kubernetes version(s) to validate against (default: 1.29.0)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    args = parser.parse_args()
    global REPO
    REPO = Path(args.repo).resolve()
    versions = args.versions or ["1.29.0"]
    report = Report(args.verbose)

    kdirs = sorted({p.parent for name in KUSTOMIZATION_FILES for p in (REPO / "k8s").rglob(name)})
    report.start("inventory")
    report.check(REPO / "k8s" / "base" in kdirs, "k8s/base has a kustomization")
    report.info("kustomizations: " + ", ".join(str(d.relative_to(REPO)) for d in kdirs))

    def guarded(fn: Any, *a: Any) -> Any:
        # A crash in one section (e.g. a manifest too broken to index) is reported as
        # a failure of that section; the other sections still run.
        try:
            return fn(*a)
        except Exception as e:  # noqa: BLE001
            report.fail(f"{fn.__name__} crashed: {type(e).__name__}: {e}")
            return None

    guarded(check_kustomize_refs, report, kdirs)
    rendered = guarded(render_all, report, kdirs) or {}
    guarded(check_schemas, report, rendered, versions)
    keys = guarded(secret_example_keys, report) or set()
    for d, objs in rendered.items():
        guarded(check_k8s_semantics, report, str(d.relative_to(REPO)), copy.deepcopy(objs), keys)
    guarded(check_compose, report)
    guarded(check_dockerfile, report)
    guarded(check_init_sql, report)

    print()
    if report.errors:
        print(f"check_manifests: {len(report.errors)} problem(s):")
        for e in report.errors:
            print(f"  - {e}")
        print(f"check_manifests: {report.passed} checks passed, {len(report.errors)} failed")
        return 1
    print(f"check_manifests: all {report.passed} checks passed")
    return 0


REPO = Path(".")

if __name__ == "__main__":
    sys.exit(main())
