"""``mlops-ops keys``: make, show, rotate the deployment's signing keys, and re-sign registrations after a rotation.

The embedded default keeps its key under ``$MLOPS_HOME/trust`` (see :mod:`mlops_ops.hooks.trust`), where these
commands change it in place. A deployment with a trust connection keeps its private key in the connection's
password: ``generate`` writes a new key to a file (mode 0600) for the administrator to put there, and prints
the public half for the verifying hosts' ``verification_keys``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_keys_command(groups: argparse._SubParsersAction) -> None:
    """Register ``mlops-ops keys generate|show|rotate|resign``."""
    keys = groups.add_parser(
        "keys",
        help="signing keys: generate, show, rotate, re-sign registrations",
        description="The Ed25519 keys that sign model registrations and alias moves (see the security docs).",
    )
    actions = keys.add_subparsers(title="actions", dest="action", required=True)
    generate = actions.add_parser("generate", help="write a new private key to a file (mode 0600)")
    generate.add_argument(
        "--out", required=True, type=Path, help="where the PEM private key is written (new file)"
    )
    generate.add_argument(
        "--format",
        choices=("pem", "base64"),
        default="pem",
        help="pem (default), or base64 of the 32 raw bytes: one line, for an environment file or secret store",
    )
    generate.set_defaults(handler=_generate)
    show = actions.add_parser(
        "show", help="the signing key id and the trusted public keys of a trust connection"
    )
    show.add_argument("--trust-conn-id", default="mlops_trust_default")
    show.set_defaults(handler=_show)
    rotate = actions.add_parser(
        "rotate",
        help="embedded default: a new signing key; the old public key stays trusted so old signatures verify",
    )
    rotate.set_defaults(handler=_rotate)
    resign = actions.add_parser(
        "resign",
        help="re-sign every version of a model whose signature verifies now, with the current signing key",
    )
    resign.add_argument("--model", required=True, help="the registered model")
    resign.add_argument("--mlflow-conn-id", default="mlflow_default")
    resign.add_argument("--trust-conn-id", default="mlops_trust_default")
    resign.set_defaults(handler=_resign)


def _write_private(path: Path, pem: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(pem)


def _generate(args: argparse.Namespace) -> int:
    from mlops_ops.core.signing import SigningKey

    if args.out.exists():
        print(f"{args.out} exists: refusing to overwrite a key")
        return 2
    key = SigningKey.generate()
    _write_private(args.out, key.to_pem() if args.format == "pem" else key.to_base64() + "\n")
    print(
        f"private key {key.key_id} written to {args.out} (mode 0600): put it in the trust connection's password"
    )
    print(f"public key (for verification_keys): {key.public_text}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from mlops_ops.hooks.trust import TrustHook

    trust = TrustHook(trust_conn_id=args.trust_conn_id)
    try:
        signing = trust.signing_key().key_id
    except ValueError:
        signing = None
    print(
        json.dumps(
            {
                "signing_key_id": signing,
                "verification_key_ids": sorted(trust.verification_keys.keys),
                "alias_log": trust.alias_log.describe(),
            },
            indent=2,
        )
    )
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from mlops_ops.core.signing import SigningKey
    from mlops_ops.hooks.trust import (
        SIGNING_KEY_FILE,
        VERIFICATION_KEYS_FILE,
        embedded_signing_key,
        trust_home,
    )

    home = trust_home()
    old = embedded_signing_key(create=False)
    new = SigningKey.generate()
    staged = home / f"{SIGNING_KEY_FILE}.new"
    staged.unlink(missing_ok=True)
    _write_private(staged, new.to_pem())
    if old is not None:
        # The old public half stays trusted: versions and alias moves it signed keep verifying.
        with (home / VERIFICATION_KEYS_FILE).open("a") as handle:
            handle.write(old.public_text + "\n")
    os.replace(staged, home / SIGNING_KEY_FILE)
    print(f"signing key rotated: {old.key_id if old else 'none'} -> {new.key_id} under {home}")
    print("the old public key stays trusted; `mlops-ops keys resign --model NAME` re-signs registrations")
    return 0


def _resign(args: argparse.Namespace) -> int:
    from mlops_ops.core.errors import ModelIntegrityError
    from mlops_ops.core.model_artifacts import SIGNATURE_TAG, verify_registration
    from mlops_ops.hooks.mlflow import MlflowHook
    from mlops_ops.hooks.trust import TrustHook

    mlflow = MlflowHook(mlflow_conn_id=args.mlflow_conn_id)
    trust = TrustHook(trust_conn_id=args.trust_conn_id)
    key = trust.signing_key()
    done, refused = 0, 0
    for version in mlflow.search_versions(args.model):
        pinned = mlflow.pin_version(args.model, version=str(version.version))
        try:
            registration = verify_registration(pinned, trust.verification_keys)
        except ModelIntegrityError as err:
            refused += 1
            print(f"v{pinned.version}: left as it is: {err}")
            continue
        if json.loads(pinned.signature).get("key_id") == key.key_id:
            continue
        mlflow.set_version_tags(args.model, pinned.version, {SIGNATURE_TAG: registration.sign(key)})
        done += 1
        print(f"v{pinned.version}: re-signed with {key.key_id}")
    print(f"{done} version(s) re-signed, {refused} left unsigned or refused")
    return 0
