"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, with STARTTLS or implicit TLS on a self-signed
certificate made at test time, and AUTH required.

    with smtp_server(tmp_path, security="starttls") as server:
        ...  # EmailChannel(host="127.0.0.1", port=server.port, username=server.user, password=server.password)
        server.messages     # what was accepted: envelope, parsed message, peer, authenticated login
        server.client_context()   # an SSLContext that trusts the self-signed certificate

    smtp_server(tmp_path, echo_auth="PLAIN")   # a careless server: offers only that mechanism, refuses
                                               # every login, and quotes what the client sent in its 535
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for `host` (as an IP address SAN); returns (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    peer: Any
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpServer:
    port: int
    cert: Path
    user: str
    password: str
    host: str = "127.0.0.1"
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cert))
        return context


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content or b""),
                            session.peer, login)  # fmt: skip
        with self.server.lock:
            self.server.messages.append(received)
        return "250 2.0.0 OK queued"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echoed(mechanism: str, login: bytes, password: bytes) -> str:
    """The 535 reply of a server that quotes the client's AUTH exchange back ("clear": the decoded values)."""
    if mechanism == "PLAIN":
        quoted = "AUTH PLAIN " + base64.b64encode(b"\0" + login + b"\0" + password).decode()
    elif mechanism == "LOGIN":  # the command with the user name, then the client's answer to "334 Password:"
        quoted = f"AUTH LOGIN {base64.b64encode(login).decode()} / {base64.b64encode(password).decode()}"
    else:
        quoted = f"user {login.decode()} password {password.decode()}"
    return f"535 5.7.8 Authentication credentials invalid: {quoted}"


@contextmanager
def smtp_server(
    directory: Path,
    *,
    security: str = "starttls",
    user: str = "alerts",
    password: str = "s3cret",
    echo_auth: str | None = None,
) -> Iterator[SmtpServer]:
    """Run aiosmtpd for the duration of the block; AUTH (PLAIN/LOGIN) is required to send.

    `echo_auth` ("PLAIN", "LOGIN" or "clear", which offers PLAIN): refuse every login with a 535 reply that
    quotes the credentials as the client sent them (`echoed`)."""
    cert, key = make_certificate(directory)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(cert), str(key))
    server = SmtpServer(port=_free_port(), cert=cert, user=user, password=password)

    def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if echo_auth is not None and isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False, message=echoed(echo_auth, data.login, data.password))
        ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
        return AuthResult(success=ok, handled=False, auth_data=data)

    kwargs: dict[str, Any] = {"auth_required": True, "authenticator": authenticate}
    if echo_auth is not None:
        kwargs["auth_exclude_mechanism"] = ["PLAIN"] if echo_auth == "LOGIN" else ["LOGIN"]
    if security == "starttls":
        kwargs.update(tls_context=server_context, require_starttls=True, auth_require_tls=True)
    elif security == "ssl":
        # Implicit TLS: aiosmtpd only counts STARTTLS as TLS for auth_require_tls, so it is off here
        # (the whole connection is encrypted). It warns about that in the server thread on every
        # connection: mark such tests @pytest.mark.filterwarnings("ignore:Requiring AUTH").
        kwargs.update(ssl_context=server_context, auth_require_tls=False)
    else:
        kwargs.update(auth_require_tls=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        controller = Controller(_Handler(server), hostname="127.0.0.1", port=server.port, **kwargs)
        controller.start()
    try:
        yield server
    finally:
        controller.stop()
