"""Initializing, unsealing and sealing a fresh server through hvac (the
server under test passes a second, uninitialized server in
TRESOR_TEST_FRESH_ADDR)."""
import os

import hvac
import pytest


@pytest.fixture(scope="module")
def fresh():
    return hvac.Client(url=os.environ["TRESOR_TEST_FRESH_ADDR"])


def test_init_unseal_seal(fresh):
    assert fresh.sys.is_initialized() is False
    init = fresh.sys.initialize(secret_shares=5, secret_threshold=3)
    keys, root = init["keys"], init["root_token"]
    assert len(keys) == 5 and len(init["keys_base64"]) == 5
    assert fresh.sys.is_initialized() is True and fresh.sys.is_sealed() is True
    status = fresh.sys.submit_unseal_key(keys[0])
    assert status["sealed"] is True and status["progress"] == 1 and status["t"] == 3
    assert fresh.sys.submit_unseal_key(keys[0])["progress"] == 1, "a share given twice counts once"
    status = fresh.sys.submit_unseal_keys(keys[1:3])
    assert status["sealed"] is False and status["progress"] == 0
    fresh.token = root
    fresh.secrets.kv.v2.create_or_update_secret(path="after-init", secret={"k": "v"})
    fresh.sys.seal()
    assert fresh.sys.is_sealed() is True
    with pytest.raises(hvac.exceptions.VaultDown):
        fresh.secrets.kv.v2.read_secret_version(path="after-init", raise_on_deleted_version=True)
    fresh.sys.submit_unseal_keys([keys[4], keys[2], keys[0]])
    assert fresh.secrets.kv.v2.read_secret_version(path="after-init", raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}
    with pytest.raises(hvac.exceptions.InvalidRequest):
        fresh.sys.initialize(secret_shares=1, secret_threshold=1)
