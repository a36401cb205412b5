"""deploy/kubernetes/ describes the topology `make smoke` starts (issue 19): every manifest valid against the
Kubernetes schemas bundled with kubernetes-validate (offline), a worker Deployment per queue the app routes to,
one beat, a migration Job, the two gunicorn pools behind Services, autoscaling for web and verification, and the
security settings bubblewrap needs in the verification pods."""

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = DEPLOY / "kubernetes"


def manifest_files() -> list[Path]:
    return sorted(path for path in MANIFESTS.glob("*.yaml") if path.name != "kustomization.yaml")


def resources() -> list[dict]:
    return [doc for path in manifest_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in resources() if doc["kind"] == kind}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("path", manifest_files(), ids=lambda path: path.name)
def test_each_manifest_is_valid_against_the_kubernetes_schemas(path):
    version = kubernetes_validate.latest_version()
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)  # raises ValidationError naming the field


def test_the_validation_catches_a_mistyped_field():
    web = by_kind("Deployment")["nbarchive-web"]
    broken = {**web, "spec": {**web["spec"], "replica": 2}}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]

    assert sorted(listed) == [path.name for path in manifest_files()]


def test_a_worker_deployment_consumes_each_queue_the_app_routes_to(settings):
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {"celery"}
    consumed = {}
    for name, deployment in by_kind("Deployment").items():
        command = container(deployment)["command"]
        if command[:4] == ["celery", "-A", "repository", "worker"]:
            consumed[name] = command[command.index("--queues") + 1]

    assert sorted(consumed.values()) == sorted(routed)
    assert set(settings.WORKER_QUEUES) == routed  # what /health/ready expects a worker on
    config = by_kind("ConfigMap")["nbarchive-config"]["data"]
    assert set(config["WORKER_QUEUES"].split(",")) == routed


def test_exactly_one_beat_that_is_never_rolled_two_at_a_time():
    beats = [d for d in by_kind("Deployment").values() if container(d)["command"][:4] == ["celery", "-A", "repository",
                                                                                          "beat"]]

    assert len(beats) == 1
    assert beats[0]["spec"]["replicas"] == 1 and beats[0]["spec"]["strategy"]["type"] == "Recreate"


def test_the_migration_job_checks_the_configuration_and_migrates():
    (job,) = by_kind("Job").values()
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])

    assert "manage.py check --deploy" in command and "manage.py migrate --no-input" in command


def test_web_and_upload_pools_run_the_shipped_gunicorn_configurations_behind_services():
    deployments, services = by_kind("Deployment"), by_kind("Service")
    for name, config in (("nbarchive-web", "deploy/gunicorn.conf.py"),
                         ("nbarchive-uploads", "deploy/gunicorn-uploads.conf.py")):
        command = container(deployments[name])["command"]
        assert command[:3] == ["gunicorn", "-c", config] and (DEPLOY.parent / config).exists()
        port = int(command[command.index("--bind") + 1].rsplit(":", 1)[1])
        service = services[name]
        assert service["spec"]["selector"] == deployments[name]["spec"]["selector"]["matchLabels"]
        assert [p["port"] for p in service["spec"]["ports"]] == [port]
        assert container(deployments[name])["readinessProbe"]["httpGet"]["path"] == "/health/live"


def test_web_and_verification_workers_scale_automatically():
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in by_kind("HorizontalPodAutoscaler").values()}

    assert targets == {"nbarchive-web", "nbarchive-worker-verification"}
    assert targets <= set(by_kind("Deployment"))


def test_verification_pods_allow_bubblewrap_without_privilege(settings):
    pod = by_kind("Deployment")["nbarchive-worker-verification"]["spec"]["template"]
    worker = container({"spec": {"template": pod}})

    assert pod["spec"]["hostUsers"] is False
    assert pod["spec"]["securityContext"]["seccompProfile"]["type"] == "Unconfined"
    assert pod["spec"]["securityContext"]["appArmorProfile"]["type"] == "Unconfined"
    assert pod["metadata"]["annotations"]["container.apparmor.security.beta.kubernetes.io/worker"] == "unconfined"
    assert worker["securityContext"]["procMount"] == "Unmasked"
    assert not worker["securityContext"].get("privileged")
    # The pod's user namespace maps 65,536 uids: the sandbox uids must be among them.
    env = {item["name"]: int(item["value"]) for item in worker["env"]}
    assert env["RUNNER_SANDBOX_UID_FIRST"] + env["RUNNER_SANDBOX_UID_COUNT"] <= 65536


def test_the_config_map_and_secret_set_only_documented_settings():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (DEPLOY / "env.example").read_text(), re.MULTILINE))
    config = by_kind("ConfigMap")["nbarchive-config"]["data"]
    secret = by_kind("Secret")["nbarchive-secrets"]["stringData"]

    assert set(config) - documented == set()
    assert set(secret) - documented == set()
    assert config["DJANGO_DEBUG"] == "0" and config["RUNNER"] == "image"
    assert not set(config) & set(secret)


def test_compose_and_systemd_run_the_same_workers_and_one_beat(settings):
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {"celery"}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    commands = [service["command"] for service in compose.values() if isinstance(service.get("command"), str)]
    units = [path.read_text() for path in (DEPLOY / "systemd").glob("*.service")]

    for described in (commands, units):
        queues = [re.search(r"--queues (\S+)", text).group(1) for text in described if " worker " in text]
        assert sorted(queues) == sorted(routed)
        assert sum("celery -A repository beat" in text for text in described) == 1
    assert "migrate --no-input" in compose["migrate"]["command"]
