"""HTTPS for the LAN: phones only give the microphone to secure pages.

When no certificate is configured, `ensure_certificate` makes a small local certificate authority once
(data_dir/tls/ca.pem, valid 10 years) and a server certificate signed by it (data_dir/tls/cert.pem + key.pem)
whose SANs name localhost, 127.0.0.1, ::1, this machine's hostname and its LAN addresses. Why a CA and not a bare
self-signed certificate: a phone can install and trust the CA once (iOS Safari refuses `wss://` to a merely
"accepted" self-signed certificate), and the server certificate can then be re-issued when the machine's address
changes without the phone noticing. Browsers that just click through the warning work either way.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CA_DAYS = 3650
CERT_DAYS = 825  # Apple's limit for certificates that users trust by hand
RENEW_BEFORE = dt.timedelta(days=30)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TLSConfigError(ValueError):
    pass


def tls_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "tls"


def ca_certificate_path(data_dir: Path) -> Path:
    """Where the local CA certificate (public, safe to hand to phones) lives."""
    return tls_dir(data_dir) / "ca.pem"


def lan_addresses() -> list[IPAddress]:
    """This machine's non-loopback IP addresses, best effort and without sending any packet."""
    found: set[IPAddress] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
    except OSError:
        pass
    # The address of the default route: connect() on UDP only picks a source address.
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                found.add(ipaddress.ip_address(s.getsockname()[0].split("%")[0]))
        except OSError:
            pass
    return sorted((a for a in found if not (a.is_loopback or a.is_link_local or a.is_unspecified)), key=str)


def wanted_names() -> tuple[list[str], list[IPAddress]]:
    """DNS names and IPs the server certificate should cover."""
    names = ["localhost"]
    host = socket.gethostname().strip()
    for candidate in (host, f"{host.split('.')[0]}.local" if host else ""):
        if candidate and candidate not in names:
            names.append(candidate)
    ips: list[IPAddress] = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"), *lan_addresses()]
    return names, list(dict.fromkeys(ips))


def ensure_certificate(data_dir: Path, certfile: Path | None = None, keyfile: Path | None = None) -> tuple[Path, Path]:
    """Return (certfile, keyfile) for uvicorn: the configured pair, or a generated one kept in data_dir/tls/."""
    if certfile or keyfile:
        if not (certfile and keyfile):
            raise TLSConfigError("give both certfile and keyfile, or neither (then a local certificate is made)")
        for p in (certfile, keyfile):
            if not Path(p).is_file():
                raise TLSConfigError(f"TLS file not found: {p}")
        return Path(certfile), Path(keyfile)

    folder = tls_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _ensure_ca(folder)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    names, ips = wanted_names()
    reason = _why_renew(cert_path, key_path, ca_cert, names, ips)
    if reason:
        log.info("TLS: issuing a server certificate in %s (%s)", folder, reason)
        _issue(cert_path, key_path, ca_cert, ca_key, names, ips)
    else:
        log.info("TLS: reusing the certificate in %s", folder)
    log.info("TLS: local CA fingerprint (SHA-256) %s", fingerprint(ca_cert))
    return cert_path, key_path


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write atomically (a crash never leaves half a key) with restrictive permissions."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    """A CA signs certificates; the server's EC key signs handshakes and agrees keys."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ensure_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_path, ca_key_path = folder / "ca.pem", folder / "ca-key.pem"
    try:
        cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc - RENEW_BEFORE > _now():
            return cert, key
    except (OSError, ValueError):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "localhost"
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "BabbleFish"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"BabbleFish local CA ({host})"[:64]),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(ca=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(ca_key_path, _key_pem(key))
    _write_private(ca_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.info("TLS: created a local certificate authority %s", ca_path)
    return cert, key


def _why_renew(
    cert_path: Path, key_path: Path, ca: x509.Certificate, names: list[str], ips: list[IPAddress]
) -> str | None:
    """Why the server certificate must be (re)issued, or None to reuse it."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return "none yet"
    if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        return "key does not match"
    if cert.issuer != ca.subject:
        return "issued by another CA"
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return "expiring"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no SANs"
    missing = set(names) - set(san.get_values_for_type(x509.DNSName))
    missing_ips = set(ips) - set(san.get_values_for_type(x509.IPAddress))
    if missing or missing_ips:
        # A new LAN address (DHCP, another network): browsers check the SAN, so re-issue under the same CA.
        return "new names: " + ", ".join(sorted(missing) + sorted(map(str, missing_ips)))
    return None


def _issue(
    cert_path: Path,
    key_path: Path,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[str],
    ips: list[IPAddress],
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    san = x509.SubjectAlternativeName([*(x509.DNSName(n) for n in names), *(x509.IPAddress(i) for i in ips)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[-1][:64])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=CERT_DAYS), ca.not_valid_after_utc))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            _key_usage(ca=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    # Full chain: the server certificate, then the CA, so clients that trust the CA can build the path.
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    _write_private(cert_path, chain, 0o644)
