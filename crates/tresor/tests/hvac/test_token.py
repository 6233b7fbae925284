"""auth/token through hvac."""
import hvac
import pytest


def test_create_lookup_renew_revoke(client, addr):
    token = client.auth.token
    created = token.create(policies=["default"], ttl="1h", meta={"team": "ml"}, display_name="ci")["auth"]
    assert created["client_token"].startswith("tvs.")
    assert created["policies"] == ["default"]
    assert created["lease_duration"] == 3600
    assert created["renewable"] is True
    child = hvac.Client(url=addr, token=created["client_token"])
    me = child.auth.token.lookup_self()["data"]
    assert me["policies"] == ["default"]
    assert me["meta"] == {"team": "ml"}
    assert me["display_name"] == "token-ci"
    assert 3590 <= me["ttl"] <= 3600
    assert me["id"] == created["client_token"]
    looked = token.lookup(created["client_token"])["data"]
    assert looked["accessor"] == created["accessor"]
    by_accessor = token.lookup_accessor(created["accessor"])["data"]
    assert by_accessor["id"] == "" and by_accessor["accessor"] == created["accessor"]
    renewed = token.renew(created["client_token"], increment="2h")["auth"]
    assert 7100 <= renewed["lease_duration"] <= 7200
    self_renewed = child.auth.token.renew_self(increment="30m")["auth"]
    assert 1790 <= self_renewed["lease_duration"] <= 1800
    token.revoke(created["client_token"])
    with pytest.raises(hvac.exceptions.Forbidden):
        child.auth.token.lookup_self()


def test_revoke_self_and_by_accessor(client, addr):
    a = client.auth.token.create(policies=["default"])["auth"]
    hvac.Client(url=addr, token=a["client_token"]).auth.token.revoke_self()
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.token.lookup(a["client_token"])
    b = client.auth.token.create(policies=["default"])["auth"]
    assert b["accessor"] in client.auth.token.list_accessors()["data"]["keys"]
    client.auth.token.revoke_accessor(b["accessor"])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.token.lookup(b["client_token"])


def test_cascade_and_orphans(client, addr):
    client.sys.create_or_update_acl_policy(name="creator", policy='path "auth/token/create" { capabilities = ["update"] }')
    parent = client.auth.token.create(policies=["default", "creator"])["auth"]["client_token"]
    as_parent = hvac.Client(url=addr, token=parent)
    child = as_parent.auth.token.create(policies=["default"])["auth"]["client_token"]
    orphan = client.auth.token.create_orphan(policies=["default"])["auth"]
    assert orphan["orphan"] is True
    client.auth.token.revoke(parent)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.token.lookup(child)
    assert client.auth.token.lookup(orphan["client_token"])["data"]["orphan"] is True

    parent2 = client.auth.token.create(policies=["default", "creator"])["auth"]["client_token"]
    child2 = hvac.Client(url=addr, token=parent2).auth.token.create(policies=["default"])["auth"]["client_token"]
    client.auth.token.revoke_and_orphan_children(parent2)
    assert client.auth.token.lookup(child2)["data"]["orphan"] is True


def test_num_uses_and_policy_subset(client, addr):
    limited = client.auth.token.create(policies=["default"], num_uses=2)["auth"]["client_token"]
    user = hvac.Client(url=addr, token=limited)
    assert user.auth.token.lookup_self()["data"]["num_uses"] == 1
    user.auth.token.lookup_self()
    with pytest.raises(hvac.exceptions.Forbidden):
        user.auth.token.lookup_self()
    client.sys.create_or_update_acl_policy(name="creator", policy='path "auth/token/create" { capabilities = ["update"] }')
    creator = client.auth.token.create(policies=["creator"])["auth"]["client_token"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=addr, token=creator).auth.token.create(policies=["root"])


def test_periodic_and_bad_tokens(client, addr):
    periodic = client.auth.token.create(policies=["default"], period="1h")["auth"]
    assert periodic["lease_duration"] == 3600
    assert client.auth.token.lookup(periodic["client_token"])["data"]["period"] == 3600
    for bad in ["", "tvs.not-a-real-token", "x" * 5000]:
        with pytest.raises(hvac.exceptions.Forbidden):
            hvac.Client(url=addr, token=bad).secrets.kv.v2.read_secret_version(path="x", raise_on_deleted_version=True)


def test_renew_and_look_up_by_accessor(client):
    created = client.auth.token.create(policies=["default"], ttl="1h", explicit_max_ttl="3h")["auth"]
    looked = client.auth.token.lookup_accessor(created["accessor"])["data"]
    assert looked["id"] == "" and looked["policies"] == ["default"]
    renewed = client.auth.token.renew_accessor(created["accessor"], increment="2h")["auth"]
    assert renewed["client_token"] == "" and 7000 < renewed["lease_duration"] <= 7200
    client.auth.token.revoke_accessor(created["accessor"])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.token.renew_accessor(created["accessor"])
