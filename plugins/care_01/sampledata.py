"""Sample forms and attachments of care-01, for tests and ``gateway sample``.

Every sample is fictitious (見本 names, made-up numbers with right check digits); each
``samples/invalid-*.xml`` comes with the exact problems it must produce
(``invalid-*.expected.json``). See :class:`gateway.sampleset.SampleSet` for the layout.
"""

from __future__ import annotations

from pathlib import Path

from gateway.sampleset import SampleSet

MEDICAL_CARD = ("iryohoken.pdf", "医療保険の被保険者証の写し")

SAMPLES = SampleSet(
    Path(__file__).resolve().parent / "samples",
    code="care-01",
    default_variant="valid-first-category",  # 第1号被保険者
    attachments={  # 第2号 needs a copy of the medical insurance card
        "valid-second-category-wareki": (MEDICAL_CARD,),
        "invalid-category": (MEDICAL_CARD,),
        "invalid-age": (MEDICAL_CARD,),
    },
)
