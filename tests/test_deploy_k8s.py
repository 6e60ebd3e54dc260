"""The Kubernetes manifests: rendered by `kubectl kustomize`, validated against the Kubernetes
schemas (kubernetes-validate, strict: unknown fields are errors), then checked for what the
deployment issue asks of each overlay. No cluster is needed.

Without kubectl these tests skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import unavailable
from tests.support.dockerfile import parse_stages

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
TREES = {
    "base": K8S / "base",
    "dev": K8S / "overlays/dev",
    "production": K8S / "overlays/production",
}
# The oldest Kubernetes still supported by the big managed offerings, and the newest schemas.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|ENCRYPTION_KEY|DATABASE_URL|REDIS_URL", re.I)

Object = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        unavailable("kubectl on PATH, to render deploy/k8s")
    return path


@cache
def _render(tree: str) -> tuple[Object, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(TREES[tree])], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {tree}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(tree: str) -> list[Object]:
    """The objects `kubectl kustomize` renders for a tree (copies: tests may change them)."""
    return copy.deepcopy(list(_render(tree)))


def only(objects: list[Object], kind: str, name: str | None = None) -> Object:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} objects"
    return found[0]


def kinds(objects: list[Object]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def konfig_container(deployment: Object) -> Object:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "konfig")


def config_map(objects: list[Object]) -> dict[str, str]:
    deployment = only(objects, "Deployment", "konfig")
    (ref,) = [
        e["configMapRef"]["name"]
        for e in konfig_container(deployment)["envFrom"]
        if "configMapRef" in e
    ]
    return dict(only(objects, "ConfigMap", ref)["data"])


def pod_templates(objects: list[Object]) -> list[Object]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


ALL = pytest.mark.parametrize("tree", list(TREES))
SEVERAL = pytest.mark.parametrize("tree", ["base", "production"])


# -- schemas ----------------------------------------------------------------------------------


@ALL
@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_for_kubernetes(tree: str, version: str) -> None:
    objects = render(tree)
    assert objects
    errors = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{name}: {exc.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["spec"].__setitem__("replicas", "three"),
        lambda d: konfig_container(d).__setitem__("livenesProbe", {}),
        lambda d: d["spec"]["strategy"].__setitem__("rollingUpdate", {"maxSurge": []}),
    ],
    ids=["wrong-type", "misspelt-field", "wrong-nested-type"],
)
def test_the_schema_check_rejects_a_broken_deployment(break_it: Callable[[Object], None]) -> None:
    deployment = only(render("base"), "Deployment", "konfig")
    kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    break_it(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


# -- what every tree has ----------------------------------------------------------------------


@ALL
def test_the_objects_konfig_needs_are_there(tree: str) -> None:
    present = set(kinds(render(tree)))
    assert {
        "Deployment",
        "Service",
        "Ingress",
        "ConfigMap",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
    } <= present
    assert ("HorizontalPodAutoscaler" in present) == (tree != "dev")


@ALL
def test_no_secret_is_committed(tree: str) -> None:
    objects = render(tree)
    assert "Secret" not in kinds(objects), "secrets are created by the operator, not committed"
    for name in config_map(objects):
        assert not SECRET_NAME.search(name), f"{name} belongs in the Secret, not the ConfigMap"
    deployment = only(objects, "Deployment", "konfig")
    container = konfig_container(deployment)
    secret_refs = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
    assert secret_refs == ["konfig-secrets"]
    pod = deployment["spec"]["template"]["spec"]
    for each in pod["containers"] + pod.get("initContainers", []):
        for variable in each.get("env", []):
            if SECRET_NAME.search(variable["name"]) and "value" in variable:
                # Only a reference to another variable, which itself comes from the Secret.
                assert re.search(r"\$\(\w+\)", variable["value"]), variable["name"]


@ALL
def test_the_deployment_uses_the_generated_config_map(tree: str) -> None:
    settings = config_map(render(tree))
    assert settings["KONFIG_PORT"] == "8000"
    assert settings["KONFIG_HOST"] == "0.0.0.0"  # noqa: S104
    assert settings["KONFIG_LOG_FORMAT"] == "json"


@ALL
def test_probes_ask_health_and_ready_on_the_http_port(tree: str) -> None:
    container = konfig_container(only(render(tree), "Deployment", "konfig"))
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports


@ALL
def test_every_container_has_requests_and_limits(tree: str) -> None:
    for workload in pod_templates(render(tree)):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            resources = container["resources"]
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources[section].keys(), container["name"]


@ALL
def test_konfig_runs_as_the_images_user_on_a_read_only_root(tree: str) -> None:
    deployment = only(render(tree), "Deployment", "konfig")
    pod = deployment["spec"]["template"]["spec"]
    container = konfig_container(deployment)
    image_uid = int(parse_stages()[-1].all("USER")[-1].value.partition(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


@ALL
def test_tmp_and_the_data_dir_are_the_only_writable_mounts(tree: str) -> None:
    objects = render(tree)
    deployment = only(objects, "Deployment", "konfig")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in konfig_container(deployment)["volumeMounts"]}
    assert set(mounts) == {"/tmp", config_map(objects)["KONFIG_DATA_DIR"]}  # noqa: S108
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108
    claim = volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"]
    only(objects, "PersistentVolumeClaim", claim)


@ALL
def test_the_backup_volume_can_be_mounted_by_every_replica(tree: str) -> None:
    objects = render(tree)
    deployment = only(objects, "Deployment", "konfig")
    pvc = only(objects, "PersistentVolumeClaim", "konfig-data")
    several = deployment["spec"]["replicas"] > 1 or "HorizontalPodAutoscaler" in kinds(objects)
    if several:
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    else:
        assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert deployment["spec"]["strategy"]["type"] == "Recreate", "a surge pod cannot attach"


@ALL
def test_shutdown_outlasts_the_prestop_sleep_and_the_grace_period(tree: str) -> None:
    objects = render(tree)
    deployment = only(objects, "Deployment", "konfig")
    pre_stop = konfig_container(deployment)["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        sleep = int(pre_stop["sleep"]["seconds"])
    else:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep"
        sleep = int(command[1])
    assert sleep >= 5, "the Service must drop the pod before it stops listening"
    grace = int(config_map(objects)["KONFIG_SHUTDOWN_GRACE_SECONDS"])
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > sleep + grace


@ALL
def test_service_ingress_pdb_and_hpa_point_at_the_konfig_pods(tree: str) -> None:
    objects = render(tree)
    deployment = only(objects, "Deployment", "konfig")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    service = only(objects, "Service", "konfig")
    assert matches(service["spec"]["selector"], pod_labels)
    port_names = {p["name"] for p in konfig_container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    ingress = only(objects, "Ingress", "konfig")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    pdb = only(objects, "PodDisruptionBudget", "konfig")
    assert matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert pdb["spec"]["maxUnavailable"] == 1
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", "konfig")


@ALL
def test_every_image_is_pinned(tree: str) -> None:
    for workload in pod_templates(render(tree)):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            image = container["image"]
            repository, _, tag = image.partition("@")[0].rpartition(":")
            assert repository and tag and tag != "latest", image


@ALL
def test_every_pod_meets_the_restricted_pod_security_standard(tree: str) -> None:
    objects = render(tree)
    for workload in pod_templates(objects):
        pod = workload["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert not any("hostPath" in volume for volume in pod.get("volumes", []))
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container.get("securityContext", {})
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, where
            seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
            assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert not security.get("privileged"), where
    for namespace in (o for o in objects if o["kind"] == "Namespace"):
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# -- several replicas: the base and production ------------------------------------------------


@SEVERAL
def test_three_replicas_roll_one_at_a_time_without_losing_capacity(tree: str) -> None:
    deployment = only(render(tree), "Deployment", "konfig")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }


@SEVERAL
def test_the_autoscaler_keeps_at_least_three_replicas(tree: str) -> None:
    hpa = only(render(tree), "HorizontalPodAutoscaler", "konfig")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] >= 3
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


# -- dev --------------------------------------------------------------------------------------


def test_dev_runs_one_replica_in_development_mode() -> None:
    objects = render("dev")
    assert only(objects, "Deployment", "konfig")["spec"]["replicas"] == 1
    assert config_map(objects)["KONFIG_ENV"] == "development"
    assert only(objects, "Namespace")["metadata"]["name"] == "konfig-dev"
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {
        "konfig-dev"
    }


def test_dev_has_its_own_postgres_that_konfig_connects_to() -> None:
    objects = render("dev")
    postgres = only(objects, "StatefulSet")
    (container,) = postgres["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("postgres:")
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] in {m["name"] for m in container["volumeMounts"]}
    service = only(objects, "Service", postgres["spec"]["serviceName"])
    assert matches(service["spec"]["selector"], postgres["spec"]["template"]["metadata"]["labels"])
    deployment = only(objects, "Deployment", "konfig")
    inits = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["initContainers"]}
    postgres_env = {v["name"]: v for v in container["env"]}
    superuser = postgres_env["POSTGRES_USER"]["value"]
    for env, variable, role in (
        (konfig_container(deployment)["env"], "KONFIG_DATABASE_URL", "konfig_app"),
        (inits["migrate"]["env"], "KONFIG_MIGRATION_DATABASE_URL", "konfig_owner"),
        (inits["create-roles"]["env"], "KONFIG_ADMIN_DATABASE_URL", superuser),
    ):
        names = [v["name"] for v in env]
        url = next(v["value"] for v in env if v["name"] == variable)
        assert url.startswith(f"postgresql://{role}:"), url
        host_port = re.search(r"@([^/:]+):(\d+)/", url)
        assert host_port and host_port[1] == service["metadata"]["name"]
        assert int(host_port[2]) in {p["port"] for p in service["spec"]["ports"]}
        assert url.endswith("/" + postgres_env["POSTGRES_DB"]["value"])
        # The password is expanded from a variable defined before it, read from the Secret.
        (referenced,) = re.findall(r"\$\((\w+)\)", url)
        assert names.index(referenced) < names.index(variable)
        source = env[names.index(referenced)]["valueFrom"]["secretKeyRef"]
        assert source["name"] == "konfig-secrets"
        if role == superuser:
            assert postgres_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == source
    # The roles the superuser makes are those the other two URLs use, with the same passwords.
    made = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in inits["create-roles"]["env"][2:]}
    assert made == {
        "KONFIG_OWNER_PASSWORD": {"name": "konfig-secrets", "key": "KONFIG_OWNER_PASSWORD"},
        "KONFIG_APP_PASSWORD": {"name": "konfig-secrets", "key": "KONFIG_APP_PASSWORD"},
    }
    assert inits["create-roles"]["command"] == ["konfig", "db", "create-role"]
    assert list(inits) == ["create-roles", "migrate"]


# -- database roles ---------------------------------------------------------------------------


@ALL
def test_the_owner_migrates_before_konfig_serves_as_the_app_role(tree: str) -> None:
    """Row-level security holds only for a role that owns no table: the init container migrates
    with the owner's URL, from a Secret the serving container never reads."""
    objects = render(tree)
    deployment = only(objects, "Deployment", "konfig")
    pod = deployment["spec"]["template"]["spec"]
    migrate = next(c for c in pod["initContainers"] if c["name"] == "migrate")
    assert migrate["command"] == ["konfig", "db", "upgrade"]
    assert migrate["image"] == konfig_container(deployment)["image"]
    assert config_map(objects)["KONFIG_MIGRATE_ON_START"] == "false"
    serving = konfig_container(deployment)
    assert "konfig-migration" not in str(serving)
    assert "KONFIG_MIGRATION_DATABASE_URL" not in str(serving)
    assert migrate["securityContext"]["readOnlyRootFilesystem"] is True
    if tree != "dev":  # dev builds the owner's URL from its own database's Secret
        secrets = [e["secretRef"]["name"] for e in migrate["envFrom"] if "secretRef" in e]
        assert secrets == ["konfig-migration"]


# -- production -------------------------------------------------------------------------------


def test_production_runs_in_production_mode_on_external_databases() -> None:
    objects = render("production")
    assert config_map(objects)["KONFIG_ENV"] == "production"
    assert "StatefulSet" not in kinds(objects)
    for workload in pod_templates(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert not re.search(r"postgres|redis", container["image"]), container["image"]
    # Both URLs come from the operator's Secret: neither is set anywhere in the manifests.
    pod = only(objects, "Deployment", "konfig")["spec"]["template"]["spec"]
    set_here = set(config_map(objects)) | {
        v["name"] for c in pod["containers"] + pod["initContainers"] for v in c.get("env", [])
    }
    assert not {"KONFIG_DATABASE_URL", "KONFIG_MIGRATION_DATABASE_URL", "KONFIG_REDIS_URL"} & (
        set_here
    )
    assert only(objects, "Namespace")["metadata"]["name"] == "konfig"


def test_production_terminates_tls_with_a_cert_manager_certificate() -> None:
    ingress = only(render("production"), "Ingress", "konfig")
    annotations = ingress["metadata"]["annotations"]
    assert any(key.startswith("cert-manager.io/") for key in annotations)
    assert annotations["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"]
    assert {rule["host"] for rule in ingress["spec"]["rules"]} == set(tls["hosts"])


def test_production_pulls_from_a_registry() -> None:
    container = konfig_container(only(render("production"), "Deployment", "konfig"))
    assert "/" in container["image"].partition(":")[0], "a bare name only works on a dev cluster"
