"""The passenger lane's verdict policy: doubt is MANUAL, a listed person is DENY, only a clean
passage is OPEN."""

from __future__ import annotations

from dataclasses import replace

import pytest

from appliance.verdicts.passage import PassageFacts, decide_passage

CLEAN = PassageFacts(document_read=True, reference="ok", frames_with_face=8, most_faces=1, live=True,
                     match_distance=0.31, watchlist_distance=0.9)


def verdict(facts: PassageFacts) -> tuple[str, list[str]]:
    v = decide_passage(facts, match_threshold=0.55, watchlist_threshold=0.5)
    return v.decision, [r.code for r in v.reasons]


def test_a_clean_passage_opens() -> None:
    assert verdict(CLEAN) == ("OPEN", ["all_checks_passed"])


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"document_read": False}, "document_unreadable"),
        ({"document_problem": "id must be 12 digits"}, "document_invalid"),
        ({"most_faces": 2}, "several_faces"),
        ({"frames_with_face": 0, "most_faces": 0}, "no_face"),
        ({"quality_reasons": ("blurred",)}, "face_quality"),
        ({"live": False, "liveness_reasons": ("flat_motion",)}, "presentation_attack"),
        ({"live": None, "liveness_reasons": ("no_motion",)}, "liveness_undetermined"),
        ({"reference": "missing"}, "reference_missing"),
        ({"reference": "unusable", "reference_detail": "no face in the reference photo"}, "reference_unusable"),
        ({"match_distance": 0.7}, "face_mismatch"),
        ({"match_distance": None}, "no_match_score"),
    ],
)
def test_every_doubt_is_manual_with_its_reason(change: dict[str, object], code: str) -> None:
    decision, codes = verdict(replace(CLEAN, **change))  # type: ignore[arg-type]
    assert decision == "MANUAL" and code in codes


@pytest.mark.parametrize(("change", "code"), [({"document_listed": True}, "person_listed"),
                                              ({"watchlist_distance": 0.42}, "face_listed")])
def test_a_listed_person_is_denied_even_when_everything_else_passes(change: dict[str, object], code: str) -> None:
    assert verdict(replace(CLEAN, **change)) == ("DENY", [code])  # type: ignore[arg-type]


def test_denial_keeps_the_other_doubts_for_the_officer() -> None:
    decision, codes = verdict(replace(CLEAN, document_listed=True, match_distance=0.8))
    assert decision == "DENY" and codes == ["person_listed", "face_mismatch"]


def test_the_threshold_is_a_boundary_not_a_guess() -> None:
    assert verdict(replace(CLEAN, match_distance=0.55))[0] == "OPEN"
    assert verdict(replace(CLEAN, match_distance=0.5501))[0] == "MANUAL"
    assert verdict(replace(CLEAN, watchlist_distance=0.5))[0] == "DENY"
