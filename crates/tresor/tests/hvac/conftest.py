"""The server under test is started by crates/tresor/tests/server_hvac.rs,
which passes its address, root token and an audit directory in the
environment."""
import os
import uuid

import hvac
import pytest


@pytest.fixture(scope="session")
def addr():
    return os.environ["VAULT_ADDR"]


@pytest.fixture
def client(addr):
    return hvac.Client(url=addr, token=os.environ["VAULT_TOKEN"])


@pytest.fixture
def mount(client):
    """A fresh KV v2 mount per test, so tests do not see each other's data."""
    path = "kv-" + uuid.uuid4().hex[:8]
    client.sys.enable_secrets_engine(backend_type="kv", path=path, options={"version": "2"})
    yield path
    client.sys.disable_secrets_engine(path=path)
