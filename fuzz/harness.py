"""atheris harness over the package reader and the verifier (issue 3, item 8).

    ./dev fuzz 600                          # seeds (fuzz/make_corpus.py), then 600 s, niced
    .venv/bin/python fuzz/harness.py fuzz/findings/<file>   # replay one input, raising

Each input is ``<target byte><payload>``:

- 0: ``payload`` is a whole package: ``verify_package`` (``read_package`` first) with a real
  :class:`~gateway.trust.CertificateValidator` over the test PKI's roots (``fuzz/work/pki``);
- 1: ``payload`` is a kousei.xml, zipped with the members of ``fuzz/work/base.zip`` (so the
  references match and mutations reach the signature and manifest checks past the archive);
- 2: ``payload`` is any XML: ``parse_xml``, then ``peek_arrival_number`` and ``parse_manifest``.

Every refusal must be a :class:`gateway.errors.GatewayError`. Anything else is a finding: its
stack trace is printed once per (type, place), the input saved in ``fuzz/findings/``, and the
run goes on (``FUZZ_STOP=1`` stops at the first, as libFuzzer usually does).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import sys
import traceback
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

with atheris.instrument_imports(include=["gateway", "signxml", "zipfile"]):
    import zipfile  # the archive reader's parser: instrumented too
    from gateway.errors import GatewayError
    from gateway.manifest import parse_manifest, peek_arrival_number
    from gateway.models import Limits, SignaturePolicy
    from gateway.packaging import build_package
    from gateway.testpki import load_pki
    from gateway.trust import CertificateValidator, TrustAnchors
    from gateway.verification import verify_package
    from gateway.xmlsafe import parse_xml

FINDINGS = HERE / "findings"
LIMITS = Limits()
PKI = load_pki(HERE / "work" / "pki")
VALIDATOR = CertificateValidator(TrustAnchors.load(PKI.root_paths), allow_test_roots=True)
ARRIVAL = dt.datetime.now(dt.timezone.utc)
with zipfile.ZipFile(io.BytesIO((HERE / "work" / "base.zip").read_bytes())) as _base:
    BASE_MEMBERS = {i.filename: _base.read(i) for i in _base.infolist() if i.filename != "kousei.xml"}
_seen: dict[tuple[str, str, int], int] = {}


def _policy(code: str) -> SignaturePolicy:
    return SignaturePolicy(unsigned_allowed=code == "disaster-01")


def verify(package: bytes) -> None:
    verify_package(package, limits=LIMITS, validator=VALIDATOR, signature_policy_for=_policy, arrival_time=ARRIVAL)


def xml(payload: bytes) -> None:
    root = parse_xml(payload, what="fuzz.xml")
    manifest = root.find("構成情報")
    if manifest is not None:
        parse_manifest(manifest)
    peek_arrival_number(root)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, payload = data[0] % 3, data[1:]
    try:
        if target == 0:
            verify(payload)
        elif target == 1:
            verify(build_package(BASE_MEMBERS, payload))
        else:
            xml(payload)
    except GatewayError:
        pass
    except Exception as exc:  # noqa: BLE001 - anything else is what we are looking for
        _finding(exc, data)


def _finding(exc: Exception, data: bytes) -> None:
    if os.environ.get("FUZZ_STOP") or len(sys.argv) > 1 and Path(sys.argv[-1]).is_file():
        raise exc
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    key = (type(exc).__name__, frame.filename, frame.lineno or 0)
    _seen[key] = _seen.get(key, 0) + 1
    if _seen[key] > 1:
        return
    FINDINGS.mkdir(exist_ok=True)
    path = FINDINGS / f"{type(exc).__name__}-{hashlib.sha1(data).hexdigest()[:12]}"  # noqa: S324 - a name
    path.write_bytes(data)
    print(f"\n=== FINDING {key[0]} at {frame.filename}:{frame.lineno} (input: {path})", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
