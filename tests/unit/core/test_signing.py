"""Ed25519 envelopes: what is signed verifies, anything changed or signed by another key does not."""

from __future__ import annotations

import json

import pytest

from mlops_ops.core.signing import ALIAS_MOVE, REGISTRATION, SignatureError, SigningKey, VerificationKeys


@pytest.fixture(scope="module")
def key():
    return SigningKey.generate()


def test_a_signed_payload_verifies_and_keys_round_trip(key):
    envelope = key.sign({"kind": REGISTRATION, "version": "3"})
    keys = VerificationKeys.from_texts([key.public_text])
    assert keys.verify(json.dumps(envelope), REGISTRATION) == {"kind": REGISTRATION, "version": "3"}
    assert SigningKey.from_text(key.to_pem()).key_id == key.key_id == envelope["key_id"]


def test_rotation_accepts_old_and_new_keys_and_retiring_the_old_key_refuses_its_signatures(key):
    new = SigningKey.generate()
    old_signed, new_signed = key.sign({"kind": REGISTRATION}), new.sign({"kind": REGISTRATION})
    both = VerificationKeys.from_texts([key.public_text, new.public_text])
    assert both.verify(old_signed, REGISTRATION) and both.verify(new_signed, REGISTRATION)
    with pytest.raises(SignatureError, match=f"signed by key '{key.key_id}', which is not among the trusted"):
        VerificationKeys.from_texts([new.public_text]).verify(old_signed, REGISTRATION)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda e: e["payload"].update(version="4"), "does not match what was signed"),
        (lambda e: e.update(signature=e["signature"][:-4] + "AAA="), "does not match what was signed"),
        (lambda e: e["payload"].update(kind=ALIAS_MOVE), "not a mlops.registration/v1"),
        (lambda e: e.pop("signature"), "lacks payload, key_id or signature"),
    ],
    ids=["payload changed", "signature changed", "replayed as another kind", "no signature"],
)
def test_changed_envelopes_are_refused(key, change, words):
    envelope = key.sign({"kind": REGISTRATION, "version": "3"})
    change(envelope)
    with pytest.raises(SignatureError, match=words):
        VerificationKeys.from_texts([key.public_text]).verify(envelope, REGISTRATION)


def test_no_key_configured_refuses_everything_and_bad_keys_are_named_not_echoed(key):
    with pytest.raises(SignatureError, match="no verification key is configured"):
        VerificationKeys().verify(key.sign({"kind": REGISTRATION}), REGISTRATION)
    with pytest.raises(SignatureError, match="verification key #2 is not an Ed25519 public key") as raised:
        VerificationKeys.from_texts([key.public_text, "c2VjcmV0LXNlY3JldA=="])
    assert "c2VjcmV0" not in str(raised.value)
    with pytest.raises(SignatureError, match="not an Ed25519 private key") as raised:
        SigningKey.from_text("-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----")
    assert "hunter2" not in str(raised.value)
