"""Response wrapping through hvac: the wrapped answer holds only a
single-use token, unwrapped once."""
import hvac
import pytest


def test_a_wrapped_read_hides_the_secret_until_unwrapped_once(client, addr):
    client.secrets.kv.v2.create_or_update_secret(path="wrap/db", secret={"password": "wrap-me-9137"})
    wrapped = client.adapter.get("/v1/secret/data/wrap/db", wrap_ttl="60s")
    assert wrapped["data"] is None and "wrap-me-9137" not in str(wrapped)
    info = wrapped["wrap_info"]
    assert info["ttl"] == 60 and info["creation_path"] == "secret/data/wrap/db"
    looked = client.adapter.post("/v1/sys/wrapping/lookup", json={"token": info["token"]})
    assert looked["data"]["creation_path"] == "secret/data/wrap/db"
    holder = hvac.Client(url=addr, token=info["token"])
    unwrapped = holder.sys.unwrap()
    assert unwrapped["data"]["data"]["password"] == "wrap-me-9137"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.unwrap(token=info["token"])


def test_wrap_rewrap_and_token_creation(client, addr):
    wrapped = client.sys.wrap(payload={"note": "hello"}, ttl="5m")
    first = wrapped["wrap_info"]["token"]
    rewrapped = client.adapter.post("/v1/sys/wrapping/rewrap", json={"token": first})
    second = rewrapped["wrap_info"]["token"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.unwrap(token=first)
    assert client.sys.unwrap(token=second)["data"] == {"note": "hello"}
    # A token handed out wrapped, as Vault Agent's bootstrap does.
    created = client.adapter.post("/v1/auth/token/create", json={"policies": ["default"]}, wrap_ttl="2m")
    assert created["auth"] is None
    auth = client.sys.unwrap(token=created["wrap_info"]["token"])["auth"]
    assert hvac.Client(url=addr, token=auth["client_token"]).is_authenticated()


def test_wrapping_bounds_in_policies(client, addr):
    client.sys.create_or_update_acl_policy(
        name="wrapped-only",
        policy='path "secret/data/wrap/*" {\n  capabilities = ["read"]\n  min_wrapping_ttl = "30s"\n  max_wrapping_ttl = "5m"\n}\n',
    )
    client.secrets.kv.v2.create_or_update_secret(path="wrap/bounded", secret={"k": "v"})
    token = client.auth.token.create(policies=["wrapped-only"])["auth"]["client_token"]
    limited = hvac.Client(url=addr, token=token)
    with pytest.raises(hvac.exceptions.Forbidden):
        limited.secrets.kv.v2.read_secret_version(path="wrap/bounded", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        limited.adapter.get("/v1/secret/data/wrap/bounded", wrap_ttl="10m")
    ok = limited.adapter.get("/v1/secret/data/wrap/bounded", wrap_ttl="1m")
    assert client.sys.unwrap(token=ok["wrap_info"]["token"])["data"]["data"] == {"k": "v"}
