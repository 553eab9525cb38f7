"""Sample forms and attachments of childcare-01, for tests and ``gateway sample``.

Every sample is fictitious: names are 見本, 個人番号 are made-up digits whose check digit
alone is right (``gateway.identifiers.make_my_number``). Each ``samples/invalid-*.xml`` has an
``invalid-*.expected.json`` listing exactly the problems (code and path) it must produce.
:class:`gateway.sampleset.SampleSet` reads them and makes the attachments (tiny real PDFs).
"""

from __future__ import annotations

from pathlib import Path

from gateway.sampleset import SampleSet

HEALTH = ("hoken.pdf", "健康保険の資格確認書類")
SEPARATION = ("bekkyo.pdf", "別居監護申立書")

SAMPLES = SampleSet(
    Path(__file__).resolve().parent / "samples",
    code="childcare-01",
    default_variant="valid-two-children",
    # Which attachments go with which sample; anything not listed has none.
    attachments={
        "valid-two-children": (HEALTH, SEPARATION),
        "invalid-mynumber": (HEALTH, SEPARATION),
        "invalid-separated": (HEALTH, SEPARATION),
    },
)
