"""Packages signed by independent XMLDSig implementations go through the gateway's HTTP intake.

xmlsec1 (libxmlsec1) and the JDK's ``javax.xml.crypto.dsig`` sign the same manifest, form and
attachments with inclusive and exclusive C14N, and the JDK also writes the percent-encoded
``#%E6%A7%8B…`` fragment some e-Gov tooling uses. The gateway must accept every one of them
(202, then queued, then delivered in the target format), and refuse each one whose form was
changed by a single byte after signing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.samples import new_arrival_number, sample_for
from gateway.serving import make_worker
from gateway.testpki import TestPKI
from tests.conftest import AUTH, ZIP
from tests.e2e_helpers import assert_valid_target_file, change_one_form_byte, delivered_arrival_number, drop_files
from tests.interop import ALL_VARIANTS, interop_packages, missing_tools

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(bool(missing_tools()), reason=missing_tools() or "xmlsec1 and java are installed"),
]

SIGNER = "yamada-taro"  # the resident interop_packages signs as; lives in 131016 (千代田区)
ARRIVAL_BASE = new_arrival_number()[:16]  # each variant appends its own two digits


@pytest.fixture(scope="module")
def packages(pki: TestPKI) -> dict[str, bytes]:
    """Variant -> package: the childcare-01 sample with its attachments, signed by each tool."""
    from gateway.config import load_config

    sample = sample_for(load_config({}), "childcare-01", "valid")
    return interop_packages(pki, sample.form_xml, form_filename="childcare-01.xml",
                            procedure_code="childcare-01", resident_id=SIGNER,
                            attachments=dict(sample.attachments), arrival_number_base=ARRIVAL_BASE)


def arrival_number(variant: str) -> str:
    return f"{ARRIVAL_BASE}{ALL_VARIANTS.index(variant):02d}"


def test_every_variant_was_made(packages: dict[str, bytes]) -> None:
    assert set(packages) == set(ALL_VARIANTS)
    assert len(set(packages.values())) == len(ALL_VARIANTS)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_independently_signed_package_is_accepted_and_delivered(app, client, pki: TestPKI,
                                                                packages: dict[str, bytes], variant: str) -> None:
    number = arrival_number(variant)
    response = client.post("/api/v1/applications", data=packages[variant], headers={**AUTH, "Content-Type": ZIP})
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["arrival_number"] == number
    assert response.get_json()["state"] == "queued"

    view = client.get(response.headers["Location"], headers=AUTH).get_json()
    assert view["state"] == "queued" and view["procedure"] == "childcare-01"
    assert view["municipality"] == pki.resident(SIGNER).municipality.code
    assert [t["to"] for t in view["history"]] == ["received", "verified", "validated", "queued"]

    assert make_worker(app).run_once() == 1
    [delivered] = drop_files(Path(app.config["CHANNELS"]["filedrop"]["DIR"]))
    assert delivered_arrival_number(assert_valid_target_file(delivered, "childcare-01")) == number
    assert client.get(response.headers["Location"], headers=AUTH).get_json()["state"] == "delivered"


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_independently_signed_package_with_one_byte_changed_is_refused(client, packages: dict[str, bytes],
                                                                       variant: str) -> None:
    changed = change_one_form_byte(packages[variant])
    response = client.post("/api/v1/applications", data=changed, headers={**AUTH, "Content-Type": ZIP})
    assert response.status_code == 400, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "signature-digest-mismatch"
    view = client.get(f"/api/v1/applications/{arrival_number(variant)}", headers=AUTH).get_json()
    assert view["state"] == "refused" and view["error"]["code"] == "signature-digest-mismatch"
