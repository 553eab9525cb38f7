from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

import plugins.filedrop as filedrop
from gateway.errors import DeliveryError
from gateway.models import Delivery, TargetRecord
from gateway.plugins import make_plugin_manager
from plugins.filedrop import FileDropChannel

NUMBER = "202611280000012345"
CONTENT = "<Record><氏名>山田　太郎</氏名></Record>".encode()


def delivery(content: bytes = CONTENT, filename: str = "jidou.xml", target: str = "jidou-teate",
             **options: object) -> Delivery:
    record = TargetRecord(content=content, media_type="application/xml", filename=filename, target=target)
    return Delivery(arrival_number=NUMBER, procedure_code="childcare-01", target=target, record=record,
                    options=options)


def test_writes_the_record_whole_under_its_final_name(tmp_path):
    receipt = FileDropChannel(tmp_path).deliver(delivery())
    final = tmp_path / "jidou-teate" / f"{NUMBER}_jidou.xml"
    assert final.read_bytes() == CONTENT
    assert os.listdir(final.parent) == [final.name]  # no temporary file left behind
    assert stat.S_IMODE(final.stat().st_mode) == 0o640
    assert receipt.channel == "filedrop"
    assert receipt.receipt_id == f"file:jidou-teate/{final.name}#{hashlib.sha256(CONTENT).hexdigest()[:16]}"
    assert receipt.detail == str(final)


def test_a_record_without_a_name_is_named_after_the_procedure(tmp_path):
    FileDropChannel(tmp_path).deliver(delivery(filename=""))
    assert (tmp_path / "jidou-teate" / f"{NUMBER}_childcare-01.xml").read_bytes() == CONTENT


def test_a_record_name_that_already_carries_the_arrival_number_is_kept(tmp_path):
    FileDropChannel(tmp_path).deliver(delivery(filename=f"{NUMBER}_childcare-01.xml"))
    assert os.listdir(tmp_path / "jidou-teate") == [f"{NUMBER}_childcare-01.xml"]


def test_delivering_again_is_idempotent_and_does_not_rewrite(tmp_path):
    channel = FileDropChannel(tmp_path)
    first = channel.deliver(delivery())
    final = tmp_path / "jidou-teate" / f"{NUMBER}_jidou.xml"
    os.utime(final, (1_000_000, 1_000_000))
    assert channel.deliver(delivery()) == first
    assert final.stat().st_mtime == 1_000_000
    assert len(os.listdir(final.parent)) == 1


def test_a_different_file_under_the_same_name_is_never_overwritten(tmp_path):
    channel = FileDropChannel(tmp_path)
    channel.deliver(delivery())
    with pytest.raises(DeliveryError) as caught:
        channel.deliver(delivery(content=b"<Record>other</Record>"))
    assert caught.value.permanent and caught.value.code == "delivery-filedrop-conflict"
    assert (tmp_path / "jidou-teate" / f"{NUMBER}_jidou.xml").read_bytes() == CONTENT


def test_the_route_dir_option_replaces_the_root(tmp_path):
    receipt = FileDropChannel(tmp_path / "default").deliver(delivery(DIR=str(tmp_path / "routed")))
    assert (tmp_path / "routed" / "jidou-teate" / f"{NUMBER}_jidou.xml").exists()
    assert receipt.receipt_id.startswith(f"file:jidou-teate/{NUMBER}_jidou.xml#")


def test_a_crash_before_the_rename_leaves_no_final_file_and_the_retry_succeeds(tmp_path, monkeypatch):
    channel = FileDropChannel(tmp_path)

    def crash(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(filedrop.os, "replace", crash)
    with pytest.raises(DeliveryError) as caught:
        channel.deliver(delivery())
    assert not caught.value.permanent and caught.value.code == "delivery-filedrop-io"
    assert os.listdir(tmp_path / "jidou-teate") == []  # neither a partial final file nor a temp file
    monkeypatch.undo()
    channel.deliver(delivery())
    assert (tmp_path / "jidou-teate" / f"{NUMBER}_jidou.xml").read_bytes() == CONTENT


def test_a_stale_temporary_file_from_a_killed_process_does_not_matter(tmp_path):
    folder = tmp_path / "jidou-teate"
    folder.mkdir()
    (folder / f".{NUMBER}_jidou.xml.abc123.tmp").write_bytes(CONTENT[:5])
    FileDropChannel(tmp_path).deliver(delivery())
    assert (folder / f"{NUMBER}_jidou.xml").read_bytes() == CONTENT


def test_an_unwritable_drop_folder_is_a_retryable_error(tmp_path):
    (tmp_path / "jidou-teate").write_text("a file where the folder should be")
    with pytest.raises(DeliveryError) as caught:
        FileDropChannel(tmp_path).deliver(delivery())
    assert not caught.value.permanent


@pytest.mark.parametrize(("filename", "target"), [
    ("../escape.xml", "jidou-teate"), ("a/b.xml", "jidou-teate"), ("ok.xml", ".."),
    ("ok.xml", "../etc"), ("ok.xml", ""), ("x\x00.xml", "jidou-teate"),
])
def test_names_that_could_leave_the_drop_folder_are_refused(tmp_path, filename, target):
    with pytest.raises(DeliveryError) as caught:
        FileDropChannel(tmp_path / "drop").deliver(delivery(filename=filename, target=target))
    assert caught.value.permanent and caught.value.code == "delivery-filedrop-name"
    assert not (tmp_path / "escape.xml").exists()


def test_the_plugin_registers_the_channel_from_configuration(tmp_path: Path):
    config = {"LOAD_ENTRYPOINTS": False,
              "CHANNELS": {"filedrop": {"DIR": str(tmp_path), "FILE_MODE": "0644"}}}
    pm = make_plugin_manager(config, extra=[filedrop])
    (channels,) = pm.hook.register_channels(config=config)
    (channel,) = channels
    assert (channel.name, channel.directory, channel.file_mode) == ("filedrop", tmp_path, 0o644)
