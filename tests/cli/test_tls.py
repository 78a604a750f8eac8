"""The control plane serves https with `[server] tls_cert_file` and `tls_key_file`; the command
line and the daemon trust a private CA through SSL_CERT_FILE."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.fleet import ADMIN_TOKEN, Fleet
from support.navarch_process import run_navarch

from navarch.config import load_config
from navarch.errors import ConfigError

pytestmark = pytest.mark.slow


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca_and_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate it signed for 127.0.0.1 and localhost: the paths of the
    CA's certificate, the server's certificate and the server's key, all PEM."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("navarch test CA"))
        .issuer_name(_name("navarch test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("navarch control plane"))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_key_pem(server_key))
    paths[2].chmod(0o600)
    return paths


def _https_fleet(tmp_path: Path, *, header_timeout: str = "10s") -> tuple[Fleet, Path]:
    ca, cert, key = make_ca_and_certificate(tmp_path)
    fleet = Fleet(tmp_path, auth=True)
    fleet.server = f"https://127.0.0.1:{fleet.port}"
    fleet.config.write_text(
        '[server]\nheartbeat_interval = "1s"\ncommand_poll_wait = "5s"\n'
        f'header_timeout = "{header_timeout}"\n'
        f'tls_cert_file = "{cert.name}"\ntls_key_file = "{key.name}"\n'
    )
    return fleet, ca


def test_the_cli_and_a_daemon_speak_https_to_a_control_plane_whose_ca_they_trust(
    tmp_path, monkeypatch
):
    fleet, ca = _https_fleet(tmp_path)
    # Every child of the test inherits it: the control plane, the daemon and the commands.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    try:
        control_plane = fleet.start_control_plane()
        assert f"listening on {fleet.server} " in control_plane.output()
        fleet.start_daemon("gpu-1")
        node = fleet.wait_status("gpu-1", "ACTIVE")
        assert len(node["gpus"]) == 8

        listed = fleet.cli("list")
        assert listed.returncode == 0, listed.stderr
        assert "gpu-1" in listed.stdout

        untrusted = run_navarch(
            "list",
            env={
                "SSL_CERT_FILE": "",
                "NAVARCH_SERVER": fleet.server,
                "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN,
                "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1",
            },
        )
        assert (untrusted.returncode, untrusted.stdout) == (1, "")
        assert untrusted.stderr == (
            f"navarch: cannot reach the control plane at {fleet.server}: its TLS certificate is "
            "not trusted (unable to get local issuer certificate); set SSL_CERT_FILE to a file "
            "that holds the certificate of the CA that signed it\n"
        )

        plain = run_navarch(
            "list",
            env={
                "NAVARCH_SERVER": fleet.server.replace("https://", "http://"),
                "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN,
                "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1",
            },
        )
        assert plain.returncode == 1
        assert plain.stderr.startswith("navarch: cannot reach the control plane at http://")
        assert plain.stderr.count("\n") == 1
    finally:
        fleet.stop()


def test_a_client_that_never_finishes_the_handshake_is_cut_at_the_header_timeout(
    tmp_path, monkeypatch
):
    fleet, ca = _https_fleet(tmp_path, header_timeout="1s")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    try:
        fleet.start_control_plane()
        with socket.create_connection(("127.0.0.1", fleet.port), timeout=10) as silent:
            started = time.monotonic()
            assert silent.recv(1024) == b""  # closed by the control plane, no reply
            assert 0.5 < time.monotonic() - started < 5
        # The control plane still serves everyone else.
        listed = fleet.cli("list")
        assert (listed.returncode, listed.stdout) == (0, "no nodes\n")
    finally:
        fleet.stop()


def _write_config(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "navarch.toml"
    path.write_text(f"[server]\n{server}")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_a_certificate_needs_its_key_and_a_key_its_certificate(tmp_path):
    cert_only = _write_config(tmp_path, 'tls_cert_file = "server.pem"\n')
    assert _problems(cert_only) == ["server.tls_key_file: required with tls_cert_file, got none"]
    key_only = _write_config(tmp_path, 'tls_key_file = "server.key"\n')
    assert _problems(key_only) == ["server.tls_cert_file: required with tls_key_file, got none"]


def test_the_files_are_loaded_when_the_configuration_is(tmp_path):
    _, cert, key = make_ca_and_certificate(tmp_path)
    config = load_config(
        _write_config(tmp_path, 'tls_cert_file = "server.pem"\ntls_key_file = "server.key"\n')
    )
    assert (config.server.tls_cert_file, config.server.tls_key_file) == (str(cert), str(key))

    missing = _write_config(tmp_path, 'tls_cert_file = "nope.pem"\ntls_key_file = "server.key"\n')
    assert _problems(missing) == [
        f"server.tls_cert_file: cannot read {tmp_path / 'nope.pem'}: No such file or directory"
    ]

    other = tmp_path / "other"
    other.mkdir()
    make_ca_and_certificate(other)
    mismatched = _write_config(
        tmp_path, 'tls_cert_file = "server.pem"\ntls_key_file = "other/server.key"\n'
    )
    assert _problems(mismatched) == [
        f"server.tls_key_file: {other / 'server.key'} is not the private key of {cert}"
    ]

    not_pem = _write_config(
        tmp_path, 'tls_cert_file = "navarch.toml"\ntls_key_file = "server.key"\n'
    )
    [problem] = _problems(not_pem)
    assert problem.startswith(
        f"server.tls_cert_file: expected a PEM certificate chain in {tmp_path / 'navarch.toml'} "
        f"and its unencrypted PEM private key in tls_key_file ({key}), got "
    )
