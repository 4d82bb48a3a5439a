"""Ed25519 signatures over what the registry cannot be trusted to keep: registrations and alias moves.

Anyone with write access to an MLflow registry can set any tag, register any artifact and move any alias. So
the facts a deployment relies on (which artifact a version is, whether it passed its gate, which version
``champion`` should be) are signed by a key the registry never sees: the private key lives in an Airflow
connection on the workers that register and promote; hosts that only load models (scoring workers, the
prediction API) hold public keys. A signed fact is an *envelope*::

    {"payload": {...}, "key_id": "<16 hex>", "signature": "<base64>"}

The signature covers the canonical JSON of the payload (sorted keys, no whitespace), and every payload names
its ``kind``, so a signature made for one purpose (an alias move) can never be replayed as another (a
registration). Several verification keys may be trusted at once: that is how a key is rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import RefusedByPolicy

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

#: Every signed payload carries one of these under ``"kind"``.
REGISTRATION = "mlops.registration/v1"
ALIAS_MOVE = "mlops.alias-move/v1"
BACKUP_MANIFEST = "mlops.backup-manifest/v1"


class SignatureError(RefusedByPolicy, ValueError):
    """A signed envelope is missing, malformed, signed by an unknown key, or does not verify."""


def canonical(payload: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: ``payload`` as JSON with sorted keys and no whitespace."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def key_id_of(public_raw: bytes) -> str:
    """The short id of a public key: the first 16 hex digits of the sha256 of its 32 raw bytes."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _public_raw(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key that signs payloads.

    :param private: the key.
    """

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        """A new random key."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        """Read a key from PEM (PKCS#8, unencrypted) or from the base64 of its 32 raw bytes.

        :raises SignatureError: naming the problem, never echoing the text.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        text = (text or "").strip()
        if not text:
            raise SignatureError("the signing key is empty")
        try:
            if text.startswith("-----BEGIN"):
                key = serialization.load_pem_private_key(text.encode(), password=None)
            else:
                key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
        except (ValueError, TypeError, binascii.Error) as err:
            raise SignatureError(
                f"the signing key is not an Ed25519 private key in PEM or base64 ({type(err).__name__})"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SignatureError(f"the signing key is a {type(key).__name__}, not an Ed25519 private key")
        return cls(key)

    def to_base64(self) -> str:
        """The key's 32 raw bytes in base64, one line (keep it secret); :meth:`from_text` reads it back."""
        from cryptography.hazmat.primitives import serialization

        raw = self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return base64.b64encode(raw).decode()

    def to_pem(self) -> str:
        """The key as unencrypted PKCS#8 PEM (keep it secret)."""
        from cryptography.hazmat.primitives import serialization

        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @property
    def public_text(self) -> str:
        """The public key as the base64 of its 32 raw bytes, what verifying hosts are configured with."""
        return base64.b64encode(_public_raw(self.private.public_key())).decode()

    @property
    def key_id(self) -> str:
        """The id of this key's public half (see :func:`key_id_of`)."""
        return key_id_of(_public_raw(self.private.public_key()))

    def sign(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """An envelope ``{"payload", "key_id", "signature"}`` over ``payload``.

        :raises SignatureError: when ``payload`` has no ``kind``.
        """
        if not payload.get("kind"):
            raise SignatureError("a signed payload must name its kind")
        signature = self.private.sign(canonical(payload))
        return {
            "payload": dict(payload),
            "key_id": self.key_id,
            "signature": base64.b64encode(signature).decode(),
        }


@dataclass(frozen=True)
class VerificationKeys:
    """The public keys a host trusts, by key id. More than one during a rotation.

    :param keys: ``{key_id: public key}``.
    """

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> VerificationKeys:
        """Keys from base64 raw public keys (or PEM ``PUBLIC KEY`` blocks); blanks are skipped.

        :raises SignatureError: naming which entry (by position) is not an Ed25519 public key.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        keys: dict[str, Ed25519PublicKey] = {}
        for position, text in enumerate(texts, start=1):
            text = (text or "").strip()
            if not text:
                continue
            try:
                if text.startswith("-----BEGIN"):
                    key = serialization.load_pem_public_key(text.encode())
                else:
                    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
            except (ValueError, TypeError, binascii.Error) as err:
                raise SignatureError(
                    f"verification key #{position} is not an Ed25519 public key ({type(err).__name__})"
                ) from None
            if not isinstance(key, Ed25519PublicKey):
                raise SignatureError(f"verification key #{position} is a {type(key).__name__}, not Ed25519")
            keys[key_id_of(_public_raw(key))] = key
        return cls(keys)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def verify(self, envelope: Any, kind: str) -> dict[str, Any]:
        """Check ``envelope`` (a mapping or its JSON text) and return its payload.

        :param kind: the payload kind expected here; any other is refused.
        :raises SignatureError: with the reason: malformed, wrong kind, unknown key, bad signature, or no
            verification key configured at all.
        """
        from cryptography.exceptions import InvalidSignature

        if isinstance(envelope, str | bytes):
            try:
                envelope = json.loads(envelope)
            except ValueError:
                raise SignatureError("the signature is not JSON") from None
        if not isinstance(envelope, Mapping):
            raise SignatureError("the signature is not a signed envelope")
        payload, key_id, signature = (
            envelope.get("payload"),
            envelope.get("key_id"),
            envelope.get("signature"),
        )
        if not isinstance(payload, Mapping) or not isinstance(key_id, str) or not isinstance(signature, str):
            raise SignatureError("the signature envelope lacks payload, key_id or signature")
        if payload.get("kind") != kind:
            raise SignatureError(f"the signed payload is a {_short(payload.get('kind'))}, not a {kind}")
        if not self.keys:
            raise SignatureError("no verification key is configured on this host")
        key = self.keys.get(key_id)
        if key is None:
            raise SignatureError(
                f"signed by key {_short(key_id)}, which is not among the trusted keys ({', '.join(sorted(self.keys))})"
            )
        try:
            key.verify(base64.b64decode(signature, validate=True), canonical(payload))
        except (InvalidSignature, ValueError, binascii.Error):
            raise SignatureError(f"the signature by key {key_id} does not match what was signed") from None
        return dict(payload)


def _short(value: Any, limit: int = 40) -> str:
    """``value`` for a message: repr'd and cut, so hostile input is never echoed whole."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
