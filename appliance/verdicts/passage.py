"""The passenger lane's verdict: OPEN, DENY or MANUAL, with machine-readable reasons.

OPEN only when every step passed: a readable document, not listed, one face of usable quality,
judged live, matching the document's reference photo, and on no face watchlist. DENY when the
lane has a positive reason to refuse (the document or the face is on a watchlist). Everything
uncertain is MANUAL: an officer looks. A false accept lets the wrong person through, a false
reject only queues the lane, so doubt never opens the gate.

The facts carry no biometric data (no images, no descriptors): only outcomes and scores, so a
verdict can be stored and published as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PassageDecision = Literal["OPEN", "DENY", "MANUAL"]
ReferenceState = Literal["ok", "missing", "unusable"]


@dataclass(frozen=True)
class PassageReason:
    code: str
    detail: str = ""


@dataclass(frozen=True)
class PassageFacts:
    """What the lane established about one passage."""

    document_read: bool  # a document QR was decoded at all
    document_problem: str | None = None  # why the decoded document is not acceptable (None: it is)
    document_listed: bool = False  # the document number is on central's person watchlist
    reference: ReferenceState = "missing"
    reference_detail: str = ""
    frames_with_face: int = 0
    most_faces: int = 0  # the most faces seen in one frame
    quality_reasons: tuple[str, ...] = ()  # of the best frame; empty: usable
    live: bool | None = None  # None: could not tell
    liveness_reasons: tuple[str, ...] = ()
    match_distance: float | None = None  # live face vs the reference
    watchlist_distance: float | None = None  # nearest watchlist template, if any was close
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PassageVerdict:
    decision: PassageDecision
    reasons: tuple[PassageReason, ...]


def decide_passage(
    facts: PassageFacts, match_threshold: float, watchlist_threshold: float, max_faces: int = 1
) -> PassageVerdict:
    """The verdict of one passage (see the module docstring for the policy)."""
    deny: list[PassageReason] = []
    manual: list[PassageReason] = []
    if not facts.document_read:
        manual.append(PassageReason("document_unreadable", "no document QR could be decoded"))
    elif facts.document_problem:
        manual.append(PassageReason("document_invalid", facts.document_problem))
    if facts.document_listed:
        deny.append(PassageReason("person_listed", "the document number is on the person watchlist"))
    if facts.watchlist_distance is not None and facts.watchlist_distance <= watchlist_threshold:
        deny.append(PassageReason("face_listed", f"watchlist distance {facts.watchlist_distance:.3f}"))
    if facts.most_faces > max_faces:
        manual.append(PassageReason("several_faces", f"{facts.most_faces} faces in one frame"))
    elif facts.frames_with_face == 0:
        manual.append(PassageReason("no_face", "no face found in the capture"))
    else:
        if facts.quality_reasons:
            manual.append(PassageReason("face_quality", ",".join(facts.quality_reasons)))
        if facts.live is False:
            manual.append(PassageReason("presentation_attack", ",".join(facts.liveness_reasons)))
        elif facts.live is None:
            manual.append(PassageReason("liveness_undetermined", ",".join(facts.liveness_reasons)))
        if facts.reference != "ok":
            manual.append(PassageReason(f"reference_{facts.reference}", facts.reference_detail))
        elif facts.match_distance is None:
            manual.append(PassageReason("no_match_score", "the live face could not be compared"))
        elif facts.match_distance > match_threshold:
            manual.append(PassageReason("face_mismatch", f"distance {facts.match_distance:.3f} > {match_threshold}"))
    if deny:
        return PassageVerdict("DENY", tuple(deny + manual))
    if manual:
        return PassageVerdict("MANUAL", tuple(manual))
    return PassageVerdict("OPEN", (PassageReason("all_checks_passed"),))
