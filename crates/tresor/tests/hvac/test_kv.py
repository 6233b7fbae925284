"""KV version 2 through hvac: every call asserts the values returned."""
import hvac
import pytest


def test_write_read_versions(client, mount):
    kv = client.secrets.kv.v2
    r1 = kv.create_or_update_secret(path="app/db", secret={"password": "one"}, mount_point=mount)
    assert r1["data"]["version"] == 1
    assert r1["data"]["deletion_time"] == ""
    r2 = kv.create_or_update_secret(path="app/db", secret={"password": "two", "user": "mlflow"}, mount_point=mount)
    assert r2["data"]["version"] == 2
    latest = kv.read_secret_version(path="app/db", mount_point=mount, raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"password": "two", "user": "mlflow"}
    assert latest["data"]["metadata"]["version"] == 2
    first = kv.read_secret_version(path="app/db", version=1, mount_point=mount, raise_on_deleted_version=True)
    assert first["data"]["data"] == {"password": "one"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version(path="app/nope", mount_point=mount, raise_on_deleted_version=True)


def test_check_and_set(client, mount):
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="cas", secret={"k": "v"}, cas=0, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        kv.create_or_update_secret(path="cas", secret={"k": "v2"}, cas=0, mount_point=mount)
    assert "check-and-set parameter did not match the current version" in str(err.value)
    assert kv.create_or_update_secret(path="cas", secret={"k": "v2"}, cas=1, mount_point=mount)["data"]["version"] == 2
    kv.configure(cas_required=True, mount_point=mount)
    assert kv.read_configuration(mount_point=mount)["data"]["cas_required"] is True
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        kv.create_or_update_secret(path="cas", secret={"k": "v3"}, mount_point=mount)
    assert "check-and-set parameter required" in str(err.value)


def test_configuration_and_max_versions(client, mount):
    kv = client.secrets.kv.v2
    kv.configure(max_versions=3, delete_version_after="1h", mount_point=mount)
    config = kv.read_configuration(mount_point=mount)["data"]
    assert config["max_versions"] == 3
    assert config["delete_version_after"] == "1h0m0s"
    for i in range(5):
        kv.create_or_update_secret(path="pruned", secret={"n": str(i)}, mount_point=mount)
    meta = kv.read_secret_metadata(path="pruned", mount_point=mount)["data"]
    assert meta["current_version"] == 5
    assert meta["oldest_version"] == 3
    assert sorted(meta["versions"].keys()) == ["3", "4", "5"]
    assert meta["versions"]["5"]["deletion_time"] != ""


def test_delete_undelete_destroy(client, mount):
    kv = client.secrets.kv.v2
    for i in range(3):
        kv.create_or_update_secret(path="d", secret={"n": str(i)}, mount_point=mount)
    before = kv.read_secret_metadata(path="d", mount_point=mount)["data"]["updated_time"]
    kv.delete_latest_version_of_secret(path="d", mount_point=mount)
    deleted = kv.read_secret_version(path="d", mount_point=mount, raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None
    assert deleted["data"]["metadata"]["deletion_time"] != ""
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version(path="d", mount_point=mount, raise_on_deleted_version=True)
    after_delete = kv.read_secret_metadata(path="d", mount_point=mount)["data"]["updated_time"]
    assert after_delete != before
    kv.undelete_secret_versions(path="d", versions=[3], mount_point=mount)
    assert kv.read_secret_version(path="d", mount_point=mount, raise_on_deleted_version=True)["data"]["data"] == {"n": "2"}
    kv.delete_secret_versions(path="d", versions=[1], mount_point=mount)
    kv.destroy_secret_versions(path="d", versions=[2], mount_point=mount)
    meta = kv.read_secret_metadata(path="d", mount_point=mount)["data"]
    assert meta["versions"]["1"]["deletion_time"] != ""
    assert meta["versions"]["2"]["destroyed"] is True
    assert meta["versions"]["3"]["deletion_time"] == ""
    assert meta["updated_time"] != after_delete
    with pytest.raises(hvac.exceptions.InvalidPath) as err:
        kv.read_secret_version(path="d", version=2, mount_point=mount, raise_on_deleted_version=False)
    assert '"destroyed":true' in str(err.value)


def test_patch_and_subkeys(client, mount):
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="p", secret={"a": "1", "nested": {"b": "2"}}, mount_point=mount)
    patched = kv.patch(path="p", secret={"a": "changed", "c": "3"}, mount_point=mount)
    assert patched["data"]["version"] == 2
    data = kv.read_secret_version(path="p", mount_point=mount, raise_on_deleted_version=True)["data"]["data"]
    assert data == {"a": "changed", "c": "3", "nested": {"b": "2"}}
    subkeys = client.adapter.get(f"/v1/{mount}/subkeys/p")["data"]["subkeys"]
    assert subkeys == {"a": None, "c": None, "nested": {"b": None}}
    shallow = client.adapter.get(f"/v1/{mount}/subkeys/p", params={"depth": 1})["data"]["subkeys"]
    assert shallow == {"a": None, "c": None, "nested": None}


def test_raw_merge_patch(client, mount):
    client.secrets.kv.v2.create_or_update_secret(path="mp", secret={"a": "1", "b": "2"}, mount_point=mount)
    response = client.adapter.request(
        "PATCH",
        f"/v1/{mount}/data/mp",
        json={"data": {"a": None, "c": "3"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response["data"]["version"] == 2
    data = client.secrets.kv.v2.read_secret_version(path="mp", mount_point=mount, raise_on_deleted_version=True)
    assert data["data"]["data"] == {"b": "2", "c": "3"}


def test_list_and_pagination(client, mount):
    kv = client.secrets.kv.v2
    for path in ["a", "b/x", "b/y", "c", "d"]:
        kv.create_or_update_secret(path=path, secret={"k": "v"}, mount_point=mount)
    assert kv.list_secrets(path="", mount_point=mount)["data"]["keys"] == ["a", "b/", "c", "d"]
    assert kv.list_secrets(path="b", mount_point=mount)["data"]["keys"] == ["x", "y"]
    page = client.adapter.list(f"/v1/{mount}/metadata/", params={"after": "b/", "limit": 1})
    assert page["data"]["keys"] == ["c"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.list_secrets(path="none", mount_point=mount)


def test_metadata(client, mount):
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="m", secret={"k": "v"}, mount_point=mount)
    kv.update_metadata(path="m", max_versions=5, custom_metadata={"owner": "platform"}, mount_point=mount)
    meta = kv.read_secret_metadata(path="m", mount_point=mount)["data"]
    assert meta["max_versions"] == 5
    assert meta["custom_metadata"] == {"owner": "platform"}
    assert meta["cas_required"] is False
    assert meta["created_time"] <= meta["updated_time"]
    # tresor's addition: metadata writes can be check-and-set too.
    stale = meta["metadata_version"] - 1
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.adapter.post(f"/v1/{mount}/metadata/m", json={"max_versions": 7, "cas": stale})
    kv.delete_metadata_and_all_versions(path="m", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata(path="m", mount_point=mount)
