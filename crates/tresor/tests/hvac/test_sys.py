"""sys endpoints through hvac."""
import os

import hvac
import pytest


def test_health_and_status(client):
    health = client.sys.read_health_status(method="GET")
    assert health["initialized"] is True and health["sealed"] is False and health["standby"] is False
    assert client.sys.is_initialized() is True
    status = client.sys.read_seal_status()
    assert status["sealed"] is False and status["t"] == 1 and status["n"] == 1
    assert client.sys.read_health_status(method="HEAD").status_code == 200


def test_mounts(client):
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["secret/"]["options"]["version"] == "2"
    client.sys.enable_secrets_engine(backend_type="kv-v2", path="team-a", description="team A")
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["team-a/"]["description"] == "team A"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.enable_secrets_engine(backend_type="kv-v2", path="team-a")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.enable_secrets_engine(backend_type="pki", path="pki")
    client.sys.disable_secrets_engine(path="team-a")
    assert "team-a/" not in client.sys.list_mounted_secrets_engines()["data"]


def test_acl_policies(client):
    text = 'path "secret/data/app/*" {\n  capabilities = ["read"]\n}\n'
    client.sys.create_or_update_acl_policy(name="app-reader", policy=text)
    assert client.sys.read_acl_policy(name="app-reader")["data"]["policy"] == text
    names = client.sys.list_acl_policies()["data"]["keys"]
    assert "app-reader" in names and "default" in names and "root" in names
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        client.sys.create_or_update_acl_policy(name="app-reader", policy='path "x" {\n capabilities = ["fly"]\n}')
    assert "line 2" in str(err.value)
    assert client.sys.read_acl_policy(name="app-reader")["data"]["policy"] == text
    client.sys.delete_acl_policy(name="app-reader")
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.sys.read_acl_policy(name="app-reader")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.delete_acl_policy(name="default")


def test_legacy_policy_endpoints(client):
    client.sys.create_or_update_policy(name="legacy", policy='path "secret/*" { capabilities = ["list"] }')
    assert "legacy" in client.sys.list_policies()["data"]["policies"]
    assert "capabilities" in client.sys.read_policy(name="legacy")["data"]["rules"]
    client.sys.delete_policy(name="legacy")


def test_policies_are_enforced(client, addr):
    client.sys.create_or_update_acl_policy(
        name="reader", policy='path "secret/data/shared/*" { capabilities = ["read"] }'
    )
    client.secrets.kv.v2.create_or_update_secret(path="shared/x", secret={"k": "v"})
    client.secrets.kv.v2.create_or_update_secret(path="private/x", secret={"k": "v"})
    token = client.auth.token.create(policies=["reader"])["auth"]["client_token"]
    reader = hvac.Client(url=addr, token=token)
    assert reader.secrets.kv.v2.read_secret_version(path="shared/x", raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}
    with pytest.raises(hvac.exceptions.Forbidden):
        reader.secrets.kv.v2.read_secret_version(path="private/x", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        reader.secrets.kv.v2.create_or_update_secret(path="shared/x", secret={"k": "w"})
    with pytest.raises(hvac.exceptions.Forbidden):
        reader.sys.list_mounted_secrets_engines()
    caps = reader.adapter.post("/v1/sys/capabilities-self", json={"paths": ["secret/data/shared/x"]})
    assert caps["data"]["capabilities"] == ["read"]


def test_audit_devices(client):
    audit_dir = os.environ["TRESOR_TEST_AUDIT_DIR"]
    path = os.path.join(audit_dir, "hvac-audit.log")
    client.sys.enable_audit_device(device_type="file", path="hvacfile", options={"file_path": path})
    devices = client.sys.list_enabled_audit_devices()["data"]
    assert devices["hvacfile/"]["type"] == "file"
    assert devices["hvacfile/"]["options"]["file_path"] == path
    digest = client.sys.calculate_hash(path="hvacfile", input_to_hash="some-input")["data"]["hash"]
    assert digest.startswith("hmac-sha256:") and len(digest) == len("hmac-sha256:") + 64
    client.secrets.kv.v2.create_or_update_secret(path="audit-probe", secret={"password": "probe-value-81723"})
    with open(path) as log:
        text = log.read()
    assert "some-input" not in text and "probe-value-81723" not in text
    assert client.sys.calculate_hash(path="hvacfile", input_to_hash="probe-value-81723")["data"]["hash"] in text
    client.sys.disable_audit_device(path="hvacfile")
    assert "hvacfile/" not in client.sys.list_enabled_audit_devices()["data"]


def test_encryption_key_rotation(client):
    before = client.sys.get_encryption_key_status()["data"]["term"]
    client.sys.rotate_encryption_key()
    assert client.sys.get_encryption_key_status()["data"]["term"] == before + 1


def test_errors_are_vault_shaped(client, addr):
    import requests

    token = {"X-Vault-Token": client.token}
    bad_json = requests.post(f"{addr}/v1/secret/data/x", data="{not json", headers=token)
    assert bad_json.status_code == 400 and "errors" in bad_json.json()
    wrong_type = requests.post(f"{addr}/v1/secret/data/x", json={"data": "not an object"}, headers=token)
    assert wrong_type.status_code == 400
    unknown = requests.get(f"{addr}/v1/sys/nonexistent", headers=token)
    assert unknown.status_code == 404
    no_token = requests.get(f"{addr}/v1/secret/data/x")
    assert no_token.status_code == 403 and no_token.json() == {"errors": ["permission denied"]}
