"""Where the provider's Google credentials come from, in the Application Default Credentials order.

1. `credentials_file` in the provider's table;
2. the file that GOOGLE_APPLICATION_CREDENTIALS names;
3. gcloud's ADC file (`gcloud auth application-default login`);
4. the metadata server, on a Compute Engine VM (or at a `metadata_url` set in the table).

A file is a service-account JSON key or an `authorized_user` ADC file. Reading one never shows
key material: a problem names the file and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import field, frozen

from navarch_gcp.settings import METADATA_URL, GcpSettings

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
ENV_VAR = "GOOGLE_APPLICATION_CREDENTIALS"
# Where Compute Engine VMs say who made them; google-auth reads it too, before asking the
# metadata server.
_DMI_PRODUCT = Path("/sys/class/dmi/id/product_name")


class CredentialsProblem(Exception):
    """Credentials that cannot be found or read; the message is one line that says what to do."""


@frozen
class ServiceAccountKey:
    path: str
    client_email: str
    private_key_id: str
    token_uri: str
    private_key: str = field(repr=False)


@frozen
class AuthorizedUser:
    path: str
    client_id: str
    token_uri: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)


@frozen
class MetadataServer:
    url: str


Credentials = ServiceAccountKey | AuthorizedUser | MetadataServer


def locate(
    settings: GcpSettings, environ: Mapping[str, str] | None = None, home: Path | None = None
) -> Credentials:
    """The first source of the ADC order that exists, read and checked."""
    environ = os.environ if environ is None else environ
    if settings.credentials_file:
        return read_file(Path(settings.credentials_file).expanduser(), "credentials_file")
    if environ.get(ENV_VAR):
        return read_file(Path(environ[ENV_VAR]).expanduser(), ENV_VAR)
    gcloud = _gcloud_file(environ, home)
    if gcloud.is_file():
        return read_file(gcloud, "gcloud's application default credentials")
    if settings.metadata_url != METADATA_URL or _on_compute_engine():
        return MetadataServer(settings.metadata_url.rstrip("/"))
    raise CredentialsProblem(
        f"no GCP credentials found: credentials_file is not set, {ENV_VAR} is not set, "
        f"{gcloud} does not exist and this machine is not a Compute Engine VM; set "
        f"{ENV_VAR} or credentials_file to a service-account key file, or run "
        "`gcloud auth application-default login`"
    )


def read_file(path: Path, source: str) -> ServiceAccountKey | AuthorizedUser:
    """The credentials in a service-account key or ADC file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CredentialsProblem(f"{source}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CredentialsProblem(f"{path}: not a JSON credentials file")
    kind = data.get("type")
    if kind == "service_account":
        key = ServiceAccountKey(
            path=str(path),
            client_email=_text(data, "client_email", path, "service-account key"),
            private_key_id=str(data.get("private_key_id") or ""),
            token_uri=str(data.get("token_uri") or GOOGLE_TOKEN_URI),
            private_key=_text(data, "private_key", path, "service-account key"),
        )
        _check_private_key(key)
        return key
    if kind == "authorized_user":
        return AuthorizedUser(
            path=str(path),
            client_id=_text(data, "client_id", path, "ADC file"),
            token_uri=str(data.get("token_uri") or GOOGLE_TOKEN_URI),
            client_secret=_text(data, "client_secret", path, "ADC file"),
            refresh_token=_text(data, "refresh_token", path, "ADC file"),
        )
    if kind is None:
        raise CredentialsProblem(f"{path}: no 'type' field; expected a service-account key")
    raise CredentialsProblem(
        f"{path}: credentials of type {kind!r} are not supported; use a service-account key "
        "or an authorized_user ADC file"
    )


def _text(data: dict[str, Any], name: str, path: Path, what: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise CredentialsProblem(f"{path}: the {what} has no {name!r} field")
    return value


def _check_private_key(key: ServiceAccountKey) -> None:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        loaded = load_pem_private_key(key.private_key.encode(), password=None)
    except (ValueError, TypeError):
        loaded = None
    if not isinstance(loaded, RSAPrivateKey):
        raise CredentialsProblem(f"{key.path}: 'private_key' is not a PEM RSA private key")


def _gcloud_file(environ: Mapping[str, str], home: Path | None) -> Path:
    config = environ.get("CLOUDSDK_CONFIG")
    folder = Path(config) if config else (home or Path.home()) / ".config" / "gcloud"
    return folder / "application_default_credentials.json"


def _on_compute_engine() -> bool:
    try:
        product = _DMI_PRODUCT.read_text().strip()
    except OSError:
        return False
    return product in ("Google", "Google Compute Engine")
