"""The transit engine through hvac: every call asserts the values returned.

The `transit` fixture mounts a fresh transit engine per test; a server that
does not offer the engine yet (it answers "plugin not found in the catalog")
skips these tests, so they run as soon as the server mounts transit."""
import base64

import hvac
import pytest


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(text):
    return base64.b64decode(text).decode()


@pytest.fixture
def transit(client):
    import uuid

    path = "transit-" + uuid.uuid4().hex[:8]
    try:
        client.sys.enable_secrets_engine(backend_type="transit", path=path)
    except hvac.exceptions.InvalidRequest as err:
        if "plugin not found in the catalog" in str(err):
            pytest.skip("the server does not mount the transit engine yet")
        raise
    yield path
    client.sys.disable_secrets_engine(path=path)


def test_create_encrypt_decrypt(client, transit):
    t = client.secrets.transit
    t.create_key(name="app", mount_point=transit)
    key = t.read_key(name="app", mount_point=transit)["data"]
    assert key["type"] == "aes256-gcm96"
    assert key["latest_version"] == 1
    assert key["min_decryption_version"] == 1
    assert key["exportable"] is False
    assert key["deletion_allowed"] is False
    assert list(key["keys"]) == ["1"]
    enc = t.encrypt_data(name="app", plaintext=b64("hunter2"), mount_point=transit)["data"]
    assert enc["ciphertext"].startswith("vault:v1:")
    assert enc["key_version"] == 1
    dec = t.decrypt_data(name="app", ciphertext=enc["ciphertext"], mount_point=transit)["data"]
    assert unb64(dec["plaintext"]) == "hunter2"
    assert "app" in t.list_keys(mount_point=transit)["data"]["keys"]


def test_missing_key_and_bad_ciphertext_are_refused(client, transit):
    t = client.secrets.transit
    t.create_key(name="k", mount_point=transit)
    t.create_key(name="other", mount_point=transit)
    foreign = t.encrypt_data(name="other", plaintext=b64("x"), mount_point=transit)["data"]["ciphertext"]
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        t.decrypt_data(name="k", ciphertext=foreign, mount_point=transit)
    assert "message authentication failed" in str(err.value)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        t.decrypt_data(name="k", ciphertext="vault:v1:AAAA", mount_point=transit)
    assert "invalid ciphertext length" in str(err.value)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        t.decrypt_data(name="k", ciphertext="not-a-ciphertext", mount_point=transit)
    assert "invalid ciphertext" in str(err.value)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        t.decrypt_data(name="nope", ciphertext="vault:v1:AAAA", mount_point=transit)
    assert "encryption key not found" in str(err.value)


def test_encrypt_creates_a_missing_key(client, transit):
    t = client.secrets.transit
    enc = t.encrypt_data(name="upserted", plaintext=b64("x"), mount_point=transit)["data"]
    assert enc["ciphertext"].startswith("vault:v1:")
    assert t.read_key(name="upserted", mount_point=transit)["data"]["latest_version"] == 1


def test_rotate_rewrap_and_min_decryption_version(client, transit):
    t = client.secrets.transit
    t.create_key(name="r", mount_point=transit)
    old = t.encrypt_data(name="r", plaintext=b64("one"), mount_point=transit)["data"]["ciphertext"]
    t.rotate_key(name="r", mount_point=transit)
    assert t.read_key(name="r", mount_point=transit)["data"]["latest_version"] == 2
    new = t.encrypt_data(name="r", plaintext=b64("two"), mount_point=transit)["data"]
    assert new["ciphertext"].startswith("vault:v2:") and new["key_version"] == 2
    rewrapped = t.rewrap_data(name="r", ciphertext=old, mount_point=transit)["data"]
    assert rewrapped["ciphertext"].startswith("vault:v2:")
    assert rewrapped["key_version"] == 2
    plain = t.decrypt_data(name="r", ciphertext=rewrapped["ciphertext"], mount_point=transit)
    assert unb64(plain["data"]["plaintext"]) == "one"

    t.update_key_configuration(name="r", min_decryption_version=2, mount_point=transit)
    assert t.read_key(name="r", mount_point=transit)["data"]["min_decryption_version"] == 2
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        t.decrypt_data(name="r", ciphertext=old, mount_point=transit)
    assert "too old" in str(err.value)
    plain = t.decrypt_data(name="r", ciphertext=new["ciphertext"], mount_point=transit)
    assert unb64(plain["data"]["plaintext"]) == "two"


def test_batches_keep_order(client, transit):
    t = client.secrets.transit
    t.create_key(name="b", mount_point=transit)
    items = [{"plaintext": b64(f"item-{i}"), "reference": f"ref-{i}"} for i in range(5)]
    out = t.encrypt_data(name="b", batch_input=items, mount_point=transit)["data"]["batch_results"]
    assert [r["reference"] for r in out] == [f"ref-{i}" for i in range(5)]
    back = t.decrypt_data(
        name="b",
        batch_input=[{"ciphertext": r["ciphertext"]} for r in out],
        mount_point=transit,
    )["data"]["batch_results"]
    assert [unb64(r["plaintext"]) for r in back] == [f"item-{i}" for i in range(5)]


def test_datakeys(client, transit):
    t = client.secrets.transit
    t.create_key(name="d", mount_point=transit)
    dk = t.generate_data_key(name="d", key_type="plaintext", mount_point=transit)["data"]
    assert len(base64.b64decode(dk["plaintext"])) == 32
    back = t.decrypt_data(name="d", ciphertext=dk["ciphertext"], mount_point=transit)["data"]
    assert back["plaintext"] == dk["plaintext"]
    wrapped = t.generate_data_key(name="d", key_type="wrapped", bits=512, mount_point=transit)["data"]
    assert "plaintext" not in wrapped or wrapped["plaintext"] is None
    back = t.decrypt_data(name="d", ciphertext=wrapped["ciphertext"], mount_point=transit)["data"]
    assert len(base64.b64decode(back["plaintext"])) == 64


def test_export_and_deletion_are_off_by_default(client, transit):
    t = client.secrets.transit
    t.create_key(name="e", mount_point=transit)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        t.export_key(name="e", key_type="encryption-key", mount_point=transit)
    assert "not exportable" in str(err.value)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        t.delete_key(name="e", mount_point=transit)
    assert "deletion is not allowed" in str(err.value)
    t.update_key_configuration(name="e", deletion_allowed=True, mount_point=transit)
    t.delete_key(name="e", mount_point=transit)
    with pytest.raises(hvac.exceptions.InvalidPath):
        t.read_key(name="e", mount_point=transit)


def test_exportable_keys_export(client, transit):
    t = client.secrets.transit
    t.create_key(name="x", exportable=True, mount_point=transit)
    exported = t.export_key(name="x", key_type="encryption-key", mount_point=transit)["data"]
    assert exported["name"] == "x"
    assert len(base64.b64decode(exported["keys"]["1"])) == 32


def test_derived_keys_need_their_context(client, transit):
    t = client.secrets.transit
    t.create_key(name="dk", derived=True, mount_point=transit)
    ctx = b64("tenant-1")
    enc = t.encrypt_data(name="dk", plaintext=b64("v"), context=ctx, mount_point=transit)["data"]
    dec = t.decrypt_data(name="dk", ciphertext=enc["ciphertext"], context=ctx, mount_point=transit)
    assert unb64(dec["data"]["plaintext"]) == "v"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        t.decrypt_data(name="dk", ciphertext=enc["ciphertext"], context=b64("tenant-2"), mount_point=transit)
