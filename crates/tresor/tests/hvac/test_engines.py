"""KV version 1 mounts and their upgrade, the cubbyhole, capabilities and
the auth mount table, through hvac."""
import hvac
import pytest


def test_kv_version_1_and_its_upgrade_in_place(client):
    client.sys.enable_secrets_engine(backend_type="kv", path="legacy-kv", options={"version": "1"})
    kv1 = client.secrets.kv.v1
    kv1.create_or_update_secret(path="app/conf", secret={"url": "https://db"}, mount_point="legacy-kv")
    kv1.create_or_update_secret(path="app/conf", secret={"url": "https://db2"}, mount_point="legacy-kv")
    assert kv1.read_secret(path="app/conf", mount_point="legacy-kv")["data"] == {"url": "https://db2"}
    assert kv1.list_secrets(path="app", mount_point="legacy-kv")["data"]["keys"] == ["conf"]
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["legacy-kv/"]["options"]["version"] == "1"
    client.sys.tune_mount_configuration(path="legacy-kv", options={"version": "2"})
    read = client.secrets.kv.v2.read_secret_version(path="app/conf", mount_point="legacy-kv", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"url": "https://db2"} and read["data"]["metadata"]["version"] == 1
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.tune_mount_configuration(path="legacy-kv", options={"version": "1"})
    client.sys.disable_secrets_engine(path="legacy-kv")


def test_the_cubbyhole_is_each_tokens_own(client, addr):
    mine = hvac.Client(url=addr, token=client.auth.token.create(policies=["default"])["auth"]["client_token"])
    theirs = hvac.Client(url=addr, token=client.auth.token.create(policies=["default"])["auth"]["client_token"])
    mine.write("cubbyhole/notes", note="mine only")
    assert mine.read("cubbyhole/notes")["data"] == {"note": "mine only"}
    assert theirs.read("cubbyhole/notes") is None
    assert mine.list("cubbyhole/")["data"]["keys"] == ["notes"]
    mine.auth.token.revoke_self()
    again = hvac.Client(url=addr, token=mine.token)
    with pytest.raises(hvac.exceptions.Forbidden):
        again.read("cubbyhole/notes")


def test_capabilities_of_another_token_and_by_accessor(client):
    client.sys.create_or_update_acl_policy(name="caps", policy='path "secret/data/caps/*" { capabilities = ["read", "list"] }')
    created = client.auth.token.create(policies=["caps"])["auth"]
    by_token = client.sys.get_capabilities(paths=["secret/data/caps/x"], token=created["client_token"])
    assert by_token["capabilities"] == ["list", "read"]
    by_accessor = client.sys.get_capabilities(paths=["secret/data/other"], accessor=created["accessor"])
    assert by_accessor["capabilities"] == ["deny"]
    assert client.sys.get_capabilities(paths=["anything"])["capabilities"] == ["root"]


def test_the_auth_mount_table(client):
    methods = client.sys.list_auth_methods()["data"]
    assert methods["token/"]["type"] == "token"
    assert methods["token/"]["accessor"].startswith("auth_token_")
    client.sys.tune_auth_method(path="token", description="tokens", max_lease_ttl="720h")
    tuning = client.sys.read_auth_method_tuning(path="token")["data"]
    assert tuning["max_lease_ttl"] == 720 * 3600
    assert client.sys.list_auth_methods()["data"]["token/"]["description"] == "tokens"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.disable_auth_method(path="token")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.enable_auth_method(method_type="no-such-method", path="nope")


def test_batch_tokens_are_refused_not_faked(client):
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        client.adapter.post("/v1/auth/token/create", json={"policies": ["default"], "type": "batch"})
    assert "batch tokens are not offered" in str(refused.value)
