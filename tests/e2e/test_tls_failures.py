"""TLS handshake failures of a `-F relay+tls://` hop, as a user meets them: a certificate from another CA,
a server name the certificate does not carry, an expired certificate, gost's self-signed default under
`secure=true`. Each flow that fails gives exactly one clear line in the client's log (what failed and
why), never a traceback, and the client goes on serving; a correctly configured hop to the same server
works (so each failure is the one named, not a broken rig)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from relay_helpers import BEHIND, log_tail
from transport_helpers import ECHO_PORT, SERVER_NAME, Certs, echo, make_certs, module_pair, start_echo_server

from gostx.testing.gost import GostProcess, start_gost
from gostx.testing.netns import Pair, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

GOOD, EXPIRED, DEFAULT = 7201, 7202, 7203  # b's relay+tls servers: CA-signed, expired, gost's default cert
FORWARD = 6300


def services_listening(count: int):  # type: ignore[no-untyped-def]
    return lambda g: sum("listening on" in str(r.get("msg", "")) for r in g.log_records()) >= count


# case -> (b's server port, the hop's TLS options as on the command line, words the failure line must
# hold: one of each group)
CASES: dict[str, tuple[int, dict[str, str], tuple[tuple[str, ...], ...]]] = {
    "wrong-ca": (GOOD, {"caFile": "{other_ca}", "serverName": SERVER_NAME}, (("certificate",), ("verify",))),
    "default-cert-secure": (DEFAULT, {"secure": "true"}, (("certificate",), ("verify",))),
    "wrong-server-name": (GOOD, {"secure": "true", "caFile": "{ca}", "serverName": "wrong.gostx.test"},
                          (("certificate",), ("wrong.gostx.test", "mismatch"))),
    "expired": (EXPIRED, {"secure": "true", "caFile": "{ca}", "serverName": SERVER_NAME},
                (("certificate",), ("expired",))),
    "correct": (GOOD, {"secure": "true", "caFile": "{ca}", "serverName": SERVER_NAME}, ()),
}


def forward_port(case: str) -> int:
    return FORWARD + list(CASES).index(case)


def client_config(b_ip: str, certs: Certs) -> dict[str, object]:
    """a's gost: per case a `tcp://` forward to b's echo server through one `relay+tls://` hop with that
    case's TLS options (what `-L tcp://127.0.0.1:P/ECHO -F relay+tls://b:PORT?OPTIONS` gives)."""
    services, chains = [], []
    for case, (port, options, _) in CASES.items():
        tls = {k: v.format(ca=certs.ca, other_ca=certs.other_ca) for k, v in options.items()}
        dialer_tls: dict[str, object] = {"serverName": tls.get("serverName", b_ip), "secure": "secure" in tls,
                                         **({"caFile": tls["caFile"]} if "caFile" in tls else {})}
        chains.append({"name": case, "hops": [{"name": f"hop-{case}", "metadata": tls, "nodes": [{
            "name": f"node-{case}", "addr": f"{b_ip}:{port}", "connector": {"type": "relay"},
            "dialer": {"type": "tls", "tls": dialer_tls}}]}]})
        services.append({"name": case, "addr": f"127.0.0.1:{forward_port(case)}", "listener": {"type": "tcp"},
                         "handler": {"type": "tcp", "chain": case},
                         "forwarder": {"nodes": [{"name": "echo", "addr": f"{BEHIND}:{ECHO_PORT}"}]}})
    return {"services": services, "chains": chains}


@dataclass
class Rig:
    pair: Pair
    server: GostProcess
    client: GostProcess


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    for pair in module_pair("gxtf"):
        folder = tempfile.mkdtemp(prefix="gostx-tlsfail-")
        certs = make_certs(folder)
        pair.b.run(["ip", "addr", "add", f"{BEHIND}/32", "dev", "lo"])
        start_echo_server(pair.b, BEHIND)
        server = start_gost(pair.b, [
            "-L", f"relay+tls://:{GOOD}?certFile={certs.good[0]}&keyFile={certs.good[1]}",
            "-L", f"relay+tls://:{EXPIRED}?certFile={certs.expired[0]}&keyFile={certs.expired[1]}",
            "-L", f"relay+tls://:{DEFAULT}"], ready=services_listening(3))
        config = os.path.join(folder, "client.json")
        with open(config, "w", encoding="utf-8") as f:
            json.dump(client_config(pair.b_ip, certs), f)
        client = start_gost(pair.a, ["-C", config], ready=services_listening(len(CASES)))
        yield Rig(pair, server, client)
        shutil.rmtree(folder, ignore_errors=True)


def problem_lines(client: GostProcess, service: str) -> list[str]:
    """The service's log lines at warning level or above, and any line that is not a JSON record."""
    out = []
    for line in client.log_lines():
        try:
            record = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if not isinstance(record, dict):
            out.append(line)
        elif record.get("service") == service and str(record.get("level", "")).lower() in SEVERE:
            out.append(line)
    return out


SEVERE = ("warn", "warning", "error", "fatal")


FAILURES = [case for case in CASES if case != "correct"]


@pytest.mark.parametrize("case", FAILURES)
def test_handshake_failure_is_one_clear_line(rig: Rig, case: str) -> None:
    _, _, words = CASES[case]
    result = echo(rig.pair.a, "127.0.0.1", forward_port(case), 4096, timeout=10)
    assert result.got == 0, f"bytes came back through a hop whose TLS must fail: {result}"
    assert wait_until(lambda: problem_lines(rig.client, case), 5), log_tail(rig.client, rig.server)
    time.sleep(0.2)  # a second line for the same flow would come right after the first
    lines = problem_lines(rig.client, case)
    assert len(lines) == 1, "expected one line for the failed flow:\n" + "\n".join(lines)
    text = lines[0].lower()
    assert "tls" in text, f"the line does not say TLS failed: {lines[0]}"
    missing = [group for group in words if not any(word in text for word in group)]
    assert not missing, f"the line does not say why (none of {missing}): {lines[0]}"
    assert "traceback" not in "\n".join(rig.client.log_lines()).lower()
    assert rig.client.alive()


def test_correct_configuration_works(rig: Rig) -> None:
    result = echo(rig.pair.a, "127.0.0.1", forward_port("correct"), 1 << 20, timeout=10)
    assert result.intact, f"{result}\n{log_tail(rig.client, rig.server)}"
    assert not problem_lines(rig.client, "correct"), "\n".join(problem_lines(rig.client, "correct"))
