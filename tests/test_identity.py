"""identify(): the signer's basic facts against the manifest and the form, and the 宛名番号 lookup."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.identity import (
    FLAG_ADDRESS_NUMBER_UNKNOWN,
    FLAG_FACTS_MISMATCH,
    FLAG_FACTS_MISMATCH_SUBSTITUTE,
    FLAG_FACTS_UNREADABLE,
    ApplicantFields,
    identify,
)
from gateway.models import Applicant, CertificateInfo, Limits, Manifest, SignaturePolicy
from gateway.normalisation import Folding
from gateway.packaging import make_signed_package
from gateway.store import Store
from gateway.store.addressbook import AddressBook, parse_csv
from gateway.testpki import TestResident, root_ski
from gateway.trust import CertificateValidator, TrustAnchors
from gateway.verification import verify_package
from gateway.wareki import to_wareki
from plugins.care_01 import PROCEDURE as CARE
from plugins.childcare_01 import PROCEDURE as CHILDCARE

ROOT = Path(__file__).resolve().parent.parent
CHILDCARE_NS = {"f": "urn:jp:gateway:form:childcare-01:1"}
CARE_NS = {"f": "urn:jp:gateway:form:care-01:1"}

# What the built-in procedures declare.
CHILDCARE_APPLICANT = CHILDCARE.applicant_fields
care_applicant = CARE.applicant_fields


def manifest_for(applicant: Applicant) -> Manifest:
    return Manifest(arrival_number="202611280000012345", procedure_code="childcare-01", municipality_code="131016",
                    application_kind="新規申請", original_arrival_number="", applied_at=None, applicant=applicant,
                    form_id="childcare-01", form_version="1", form_filename="childcare-01.xml")


def birth_date(resident: TestResident) -> dt.date:
    return dt.datetime.strptime(resident.birth[1:], "%Y%m%d").date()


def childcare_form(resident: TestResident, **override: str) -> etree._Element:
    """The childcare-01 sample with the applicant block filled in as ``resident`` would."""
    form = etree.parse(str(ROOT / "plugins/childcare_01/samples/valid-two-children.xml")).getroot()
    values = {"氏名": resident.name, "性別": {"1": "男", "2": "女"}[resident.sex],
              "生年月日": to_wareki(birth_date(resident)), "住所": resident.address, **override}
    for tag, value in values.items():
        form.find(f"f:請求者/f:{tag}", CHILDCARE_NS).text = value
    return form


@pytest.fixture
def book(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    store.upgrade()
    yield AddressBook(store.engine)
    store.close()


def import_residents(book: AddressBook, *residents: TestResident) -> None:
    rows = [f"{_kid(r)},{r.cert.serial_number:x},{1000 + i:06d}"
            for i, r in enumerate(residents)]
    data = ("発行者鍵識別子,シリアル番号,宛名番号\n" + "\n".join(rows) + "\n").encode()
    book.replace(parse_csv(data), source="test", sha256="0" * 64)


def _kid(resident: TestResident) -> str:
    return resident.cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier.hex()


# --------------------------------------------------------------------------- the basic facts


def test_the_residents_own_data_matches_everywhere(pki):
    for resident in pki.residents:
        if resident.auth:
            continue
        result = identify(resident.cert, manifest_for(resident.applicant), childcare_form(resident),
                          applicant_fields=CHILDCARE_APPLICANT)
        assert result.flags == () and result.mismatches == (), resident.id
        comparison = result.evidence["basic_facts"]["comparison"]
        assert set(comparison) == {"申請者情報.氏名", "申請者情報.住所", "申請書.氏名", "申請書.性別",
                                   "申請書.生年月日", "申請書.住所"}
        assert set(comparison.values()) == {"一致"}


def test_notation_differences_are_not_mismatches(pki):
    taro = pki.resident("yamada-taro")  # 千代田１丁目１番１号, born 昭和55年4月15日
    manifest = manifest_for(Applicant(name="山田 太郎", address="千代田区千代田1-1-1"))
    form = childcare_form(taro, 氏名="山田太郎", 生年月日="1980-04-15", 住所="東京都千代田区千代田一丁目１－１")
    result = identify(taro.cert, manifest, form, applicant_fields=CHILDCARE_APPLICANT)
    assert result.flags == () and result.mismatches == ()


def test_a_mismatch_is_a_flag_naming_fields_never_values(pki, caplog):
    taro = pki.resident("yamada-taro")
    manifest = manifest_for(Applicant(name="山田　花子", address=taro.address))
    form = childcare_form(taro, 生年月日="昭和55年4月16日", 性別="女", 住所="東京都千代田区千代田2-2")
    with caplog.at_level(logging.INFO, logger="gateway.identity"):
        result = identify(taro.cert, manifest, form, applicant_fields=CHILDCARE_APPLICANT)
    assert result.flags == (FLAG_FACTS_MISMATCH,)
    assert result.mismatch_labels == ("申請者情報.氏名", "申請書.性別", "申請書.生年月日", "申請書.住所")
    assert result.mismatches[1].path == "請求者/性別"
    assert result.evidence["basic_facts"]["comparison"]["申請書.氏名"] == "一致"
    text = caplog.text + json.dumps(result.evidence, ensure_ascii=False) + repr(result)
    assert "申請書.生年月日" in caplog.text
    for value in ("花子", "山田", "千代田", "昭和55", "1980", "319800415"):
        assert value not in text


def test_mismatch_in_a_field_with_substitutes_is_reported_as_such(pki):
    jiro = pki.resident("yamasaki-jiro")  # the card holds 山崎, position 1 flagged (山﨑)
    ok = identify(jiro.cert, manifest_for(Applicant(name="山\U0002123d　次郎", address=jiro.address)))
    assert ok.flags == () and ok.evidence["basic_facts"]["comparison"]["申請者情報.氏名"] == "代替文字で一致"
    assert ok.evidence["basic_facts"]["substitutes"] == ["氏名"]

    other = identify(jiro.cert, manifest_for(Applicant(name="山下　次郎", address=jiro.address)))
    assert other.flags == (FLAG_FACTS_MISMATCH_SUBSTITUTE,)
    assert [m.label for m in other.mismatches] == ["申請者情報.氏名（代替文字あり）"]

    both = identify(jiro.cert, manifest_for(Applicant(name="山下　次郎", address="大阪府大阪市北区中之島9")))
    assert both.flags == (FLAG_FACTS_MISMATCH, FLAG_FACTS_MISMATCH_SUBSTITUTE)


def test_the_form_may_hold_no_applicant_facts(pki):
    taro = pki.resident("yamada-taro")
    manifest = manifest_for(taro.applicant)
    assert identify(taro.cert, manifest, childcare_form(taro)).evidence["basic_facts"]["comparison"] == {
        "申請者情報.氏名": "一致", "申請者情報.住所": "一致"}  # no declaration: only the manifest
    nothing = identify(taro.cert, manifest, childcare_form(taro), applicant_fields=lambda form: None)
    assert set(nothing.evidence["basic_facts"]["comparison"]) == {"申請者情報.氏名", "申請者情報.住所"}


def test_a_failing_declaration_is_logged_not_a_refusal(pki, caplog):
    taro = pki.resident("yamada-taro")

    def broken(form):
        raise KeyError("plugin bug")

    result = identify(taro.cert, manifest_for(taro.applicant), childcare_form(taro), applicant_fields=broken)
    assert result.flags == () and "取り出せません" in caplog.text


def test_care_01_compares_the_person_who_files(pki):
    hanako = pki.resident("suzuki-hanako")
    form = etree.parse(str(ROOT / "plugins/care_01/samples/valid-first-category.xml")).getroot()
    form.find("f:申請者/f:氏名", CARE_NS).text = hanako.name
    form.find("f:申請者/f:住所", CARE_NS).text = hanako.address
    result = identify(hanako.cert, manifest_for(hanako.applicant), form, applicant_fields=care_applicant)
    assert result.flags == ()
    assert {k for k in result.evidence["basic_facts"]["comparison"] if k.startswith("申請書")} == {
        "申請書.氏名", "申請書.住所"}
    form.find("f:申請者/f:本人との関係", CARE_NS).text = "本人"  # now the insured person is the signer
    result = identify(hanako.cert, manifest_for(hanako.applicant), form, applicant_fields=care_applicant)
    assert FLAG_FACTS_MISMATCH in result.flags
    assert {m.fact for m in result.mismatches} == {"氏名", "性別", "生年月日", "住所"}  # the sample is 見本　一男


def test_certificate_without_facts_is_flagged(pki):
    kumiko = pki.resident("watanabe-kumiko")  # a user-authentication certificate: no subjectAltName
    result = identify(kumiko.cert, manifest_for(Applicant(name="渡辺　久美子")))
    assert result.flags == (FLAG_FACTS_UNREADABLE,) and result.evidence["basic_facts"]["read"] is False


def test_unsigned_packages_are_left_alone():
    result = identify(None, manifest_for(Applicant(name="山田　太郎")))
    assert result.flags == () and result.address_number is None and result.evidence == {"signed": False}


def test_configured_kanji_variants(pki):
    taro = pki.resident("yamada-taro")
    manifest = manifest_for(Applicant(name="山田　太朗", address=taro.address))
    assert identify(taro.cert, manifest).flags == (FLAG_FACTS_MISMATCH,)
    assert identify(taro.cert, manifest, variants={"朗": "郎"}).flags == ()


# --------------------------------------------------------------------------- the 宛名番号


def test_address_number_found_by_issuer_key_and_serial(pki, book):
    taro, hanako = pki.resident("yamada-taro"), pki.resident("suzuki-hanako")  # under different roots
    import_residents(book, taro, hanako)
    result = identify(taro.cert, manifest_for(taro.applicant), address_book=book)
    assert result.address_number == "001000" and result.flags == ()
    evidence = result.evidence["address_book"]
    assert evidence["found"] and evidence["serial"] == f"{taro.cert.serial_number:x}"
    assert evidence["issuer_key_id"] == root_ski(pki.roots[taro.root_index]).hex() and evidence["import_id"] == 1
    assert identify(hanako.cert, manifest_for(hanako.applicant), address_book=book).address_number == "001001"


def test_same_serial_under_another_root_is_not_the_same_resident(pki, book):
    taro = pki.resident("yamada-taro")
    other_root = root_ski(pki.roots[1 - taro.root_index]).hex()
    data = f"発行者鍵識別子,シリアル番号,宛名番号\n{other_root},{taro.cert.serial_number:x},009999\n".encode()
    book.replace(parse_csv(data), source="test", sha256="0" * 64)
    result = identify(taro.cert, manifest_for(taro.applicant), address_book=book)
    assert result.address_number is None and result.flags == (FLAG_ADDRESS_NUMBER_UNKNOWN,)


def test_signer_missing_from_the_table_is_flagged_not_refused(pki, book, caplog):
    taro, jiro = pki.resident("yamada-taro"), pki.resident("yamasaki-jiro")
    import_residents(book, taro)
    with caplog.at_level(logging.INFO, logger="gateway.identity"):
        result = identify(jiro.cert, manifest_for(jiro.applicant), address_book=book)
    assert result.flags == (FLAG_ADDRESS_NUMBER_UNKNOWN,) and result.address_number is None
    assert result.evidence["address_book"]["found"] is False and "宛名未特定" in caplog.text
    assert identify(jiro.cert, manifest_for(jiro.applicant)).flags == ()  # no table given: no lookup


def test_end_to_end_from_a_verified_package(pki, book):
    """What the pipeline will do: verify a signed package, then identify its signer."""
    hanako = pki.resident("suzuki-hanako")
    import_residents(book, hanako)
    form = childcare_form(hanako)
    data = make_signed_package(etree.tostring(form, xml_declaration=True, encoding="UTF-8"),
                               form_filename="childcare-01.xml", procedure_code="childcare-01",
                               municipality_code=hanako.municipality.code, arrival_number="202611280000012345",
                               signer=hanako)
    verified = verify_package(
        data, limits=Limits(), validator=CertificateValidator(TrustAnchors.load(pki.root_paths), allow_test_roots=True),
        signature_policy_for=lambda code: SignaturePolicy(), arrival_time=dt.datetime.now(dt.UTC))
    assert isinstance(verified.signer, CertificateInfo)
    parsed = etree.fromstring(verified.form_xml)
    result = identify(verified.signer, verified.manifest, parsed, applicant_fields=CHILDCARE_APPLICANT,
                      address_book=book)
    assert result.flags == () and result.address_number == "001000"
    assert result.evidence["address_book"]["issuer_key_id"] == root_ski(pki.roots[hanako.root_index]).hex()
    assert result.facts is not None and result.facts.name == hanako.name
    assert hanako.cert.public_bytes(serialization.Encoding.DER) == verified.signer.der


# --------------------------------------------------------------------------- reading the form


def test_declared_paths_find_what_elementpath_finds(pki):
    """Plain child paths are read without ElementPath, with the same result: the first match in
    document order (here in the second 請求者, the first having no such field)."""
    taro = pki.resident("yamada-taro")
    form = childcare_form(taro, 氏名="山田 太郎")
    form.insert(1, etree.SubElement(form, f"{{{CHILDCARE_NS['f']}}}請求者"))  # an empty one first
    other = etree.fromstring("<請求書><請求者><氏名>山田　太郎</氏名></請求者></請求書>")  # no namespace
    for fields in (CHILDCARE_APPLICANT, ApplicantFields(name="f:請求者[2]/f:氏名", sex="f:請求者//f:性別",
                                                        birth="f:*/f:生年月日", address="f:請求者/f:なし")):
        for root in (form, other):
            ns = {"f": etree.QName(root).namespace or ""}
            found = fields.extract(root)
            for attr in ("name", "sex", "birth", "address"):
                path = getattr(fields, attr)
                node = None if path is None else root.find(path, ns)
                assert getattr(found, attr) == (None if node is None else node.text or ""), (fields, attr)
    assert CHILDCARE_APPLICANT.extract(form).name == "山田 太郎"


def test_the_card_is_folded_once_per_package(pki, monkeypatch):
    taro = pki.resident("yamada-taro")
    folded: list[str] = []
    address = Folding.address
    monkeypatch.setattr(Folding, "address", lambda self, text: folded.append(text) or address(self, text))
    manifest = manifest_for(Applicant(name=taro.name, address="千代田区千代田1-1-1"))
    form = childcare_form(taro, 住所="東京都千代田区千代田一丁目１－１")
    assert identify(taro.cert, manifest, form, applicant_fields=CHILDCARE_APPLICANT).flags == ()
    assert folded == [taro.address, "千代田区千代田1-1-1", "東京都千代田区千代田一丁目１－１"]


def test_declared_blocks_are_read_as_elementpath_reads_them():
    """The block's children are listed once; what that gives is what ``find`` gives, also with a
    fact repeated (the first), comments, another namespace, a fact only in a later block, and a
    block two steps down."""
    f = CHILDCARE_NS["f"]
    root = etree.fromstring(f"""<請求書 xmlns="{f}" xmlns:o="urn:other">
      <請求者><!-- a comment --><o:氏名>別の名前空間</o:氏名><?pi x?><氏名>最初</氏名><氏名>二番目</氏名>
        <性別>男</性別></請求者>
      <請求者><生年月日>1980-04-15</生年月日><性別>女</性別></請求者>
      <外側><内側><住所>東京都</住所></内側></外側><外側><内側><住所>大阪府</住所><氏名>内</氏名></内側></外側>
      <氏名>直下</氏名>
    </請求書>""")
    declared = [ApplicantFields(name="f:請求者/f:氏名", sex="f:請求者/f:性別", birth="f:請求者/f:生年月日",
                                address="f:外側/f:内側/f:住所"),
                ApplicantFields(name="f:氏名", sex="f:なし/f:性別", birth="f:外側/f:内側/f:生年月日",
                                address="f:請求者/f:住所"),
                ApplicantFields(name="f:外側/f:内側/f:氏名")]
    for fields in declared:
        found = fields.extract(root)
        for attr in ("name", "sex", "birth", "address"):
            path = getattr(fields, attr)
            node = None if path is None else root.find(path, CHILDCARE_NS)
            assert getattr(found, attr) == (None if node is None else node.text or ""), (fields, attr)
    assert declared[0].extract(root).name == "最初" and declared[0].extract(root).birth == "1980-04-15"
    assert declared[2].extract(root).name == "内"


def test_identity_makes_its_folding_once(pki, monkeypatch):
    """``IDENTITY.KANJI_VARIANTS`` become one Folding when the step is built, not one per package."""
    import gateway.identity as identity_module
    from gateway.identity import Identity
    from gateway.models import FormContext, Procedure, VerifiedPackage

    taro = pki.resident("yamada-taro")
    step, plain = Identity(variants={"朗": "郎"}), Identity()
    monkeypatch.setattr(identity_module, "folding", lambda variants: pytest.fail("folding made per package"))
    verified = VerifiedPackage(manifest=manifest_for(Applicant(name="山田　太朗", address=taro.address)), form_xml=b"",
                               signer=CertificateValidator(TrustAnchors.load(pki.root_paths), allow_test_roots=True)
                               .validate(taro.cert, dt.datetime.now(dt.UTC)))
    procedure = Procedure(code="x", version="1", title="x", target="x", form_namespace="", form_schema=Path("x"),
                          transform=lambda context: None)  # type: ignore[arg-type,return-value]
    context = FormContext(package=verified, form=etree.fromstring("<a/>"))
    assert step.identify(verified, procedure, context).flags == ()  # 朗 folds to 郎 as configured
    assert plain.identify(verified, procedure, context).flags == (FLAG_FACTS_MISMATCH,)


def test_a_verified_signer_is_identified_without_reading_its_certificate_again(pki, book, monkeypatch):
    """From the CertificateInfo trust made: the facts it decoded, its serial and issuer key; the
    same result as from the certificate itself."""
    import gateway.basicfacts as basicfacts_module

    taro = pki.resident("yamada-taro")
    import_residents(book, taro)
    info = CertificateValidator(TrustAnchors.load(pki.root_paths), allow_test_roots=True).validate(
        taro.cert, dt.datetime.now(dt.UTC))
    form = childcare_form(taro, 住所="東京都千代田区千代田一丁目１－１")
    manifest = manifest_for(Applicant(name="山田　花子", address=taro.address))
    expected = identify(taro.cert, manifest, form, applicant_fields=CHILDCARE_APPLICANT, address_book=book)
    monkeypatch.setattr(x509, "load_der_x509_certificate", lambda der: pytest.fail("certificate loaded"))
    monkeypatch.setattr(basicfacts_module, "_san_entries", lambda cert: pytest.fail("extensions decoded again"))
    result = identify(info, manifest, form, applicant_fields=CHILDCARE_APPLICANT, address_book=book)
    assert (result.flags, result.address_number, result.mismatches, result.evidence, result.facts) == (
        expected.flags, expected.address_number, expected.mismatches, expected.evidence, expected.facts)
    assert result.flags == (FLAG_FACTS_MISMATCH,) and result.address_number == "001000"
