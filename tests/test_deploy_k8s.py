"""deploy/k8s (issue 18, rooms larger than one machine), checked as far as this machine allows:
YAML parses; the RuntimeClass and the attendee Pod that the values describe validate
against Kubernetes' own OpenAPI schemas (PyPI kubernetes-validate, offline, strict: unknown
fields fail); the values use only keys of the zero-to-jupyterhub chart we rely on (a list
written from the chart's documentation: its values.schema.json is not on PyPI/npm/Debian);
the hub config is accepted by the authenticator's own traits; the image recipe installs
through scripts/setup.sh. NOT run here: docker build, helm install, Kata, a cluster."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
kv = pytest.importorskip("kubernetes_validate")
VERSIONS = ["1.30.0", "1.33.0"]          # clusters that run kata-deploy today

# zero-to-jupyterhub 4.x values we set (documented in its "Configuration reference")
Z2JH_KEYS = {
    "hub": {"config"},
    "singleuser": {"image", "uid", "fsGid", "allowPrivilegeEscalation", "cmd", "defaultUrl",
                   "extraPodConfig", "extraContainerConfig", "extraEnv", "cpu", "memory",
                   "storage", "startTimeout"},
    "cull": {"enabled", "timeout"}, "scheduling": {"userScheduler"}, "proxy": {"service"},
}


def _values():
    return yaml.safe_load((K8S / "values.yaml").read_text())


@pytest.mark.parametrize("version", VERSIONS)
def test_runtimeclass_validates(version):
    rc = yaml.safe_load((K8S / "runtimeclass.yaml").read_text())
    kv.validate(rc, version, strict=True)
    assert rc["kind"] == "RuntimeClass" and rc["handler"] == rc["metadata"]["name"]
    bad = dict(rc, handler=None, spec={"x": 1})
    with pytest.raises(kv.ValidationError):           # the validator does refuse a wrong one
        kv.validate(bad, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_attendee_pod_validates(version):
    """The pod KubeSpawner makes from these values (its pod spec fields), validated as a Pod."""
    v = _values()
    su = v["singleuser"]
    container = {"name": "notebook", "image": f"{su['image']['name']}:{su['image']['tag']}",
                 "args": [su["cmd"]],
                 "env": [{"name": k, "value": str(x)} for k, x in su["extraEnv"].items()],
                 "resources": {"requests": {"cpu": str(su["cpu"]["guarantee"]), "memory": su["memory"]["guarantee"]},
                               "limits": {"cpu": str(su["cpu"]["limit"]), "memory": su["memory"]["limit"]}},
                 "securityContext": {"runAsUser": su["uid"], "allowPrivilegeEscalation": su["allowPrivilegeEscalation"],
                                     **su["extraContainerConfig"]["securityContext"]}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-attendee1"},
           "spec": {"containers": [container], "securityContext": {"fsGroup": su["fsGid"]},
                    **su["extraPodConfig"]}}
    kv.validate(pod, version, strict=True)
    rc = yaml.safe_load((K8S / "runtimeclass.yaml").read_text())
    assert pod["spec"]["runtimeClassName"] == rc["metadata"]["name"]
    assert container["securityContext"]["privileged"] is True and su["uid"] == 0


def test_values_use_known_chart_keys_and_a_real_authenticator():
    v = _values()
    for top, keys in Z2JH_KEYS.items():
        assert set(v[top]) <= keys, (top, set(v[top]) - keys)
    assert set(v) <= set(Z2JH_KEYS)
    cfg = v["hub"]["config"]
    from traitlets.config import Config
    firstuse = pytest.importorskip("firstuseauthenticator")
    assert cfg["JupyterHub"]["authenticator_class"] == "firstuseauthenticator.FirstUseAuthenticator"
    a = firstuse.FirstUseAuthenticator(config=Config(cfg), dbm_path="/nonexistent/x")
    assert a.create_users is False and a.min_password_length == 8
    assert set(a.allowed_users) >= set(a.admin_users) == {"instructor"}


def test_image_recipe_uses_the_projects_setup():
    df = (K8S / "Dockerfile").read_text()
    assert df.startswith("#") and "\nFROM debian:bookworm\n" in df
    assert "scripts/setup.sh" in df and "requirements-workshop.txt" in df
    for line in df.splitlines():
        if line.startswith("COPY ") and not line.startswith("COPY . "):
            assert (K8S.parent.parent / line.split()[1]).exists(), line
    assert subprocess.run(["sh", "-n", str(K8S / "entrypoint.sh")]).returncode == 0
