from __future__ import annotations

import dataclasses

import pytest

from appliance.config import VerdictConfig
from appliance.lanes.crossing import Crossing, FieldResult, SealState
from appliance.reads import Observation, SealRead
from appliance.verdicts.manifest import Manifest, ManifestContainer, ManifestEntry, ManifestIndex
from appliance.verdicts.rules import decide

ENTRY = ManifestEntry(
    declaration="301234567890",
    tractor_plate="12C-123.45",
    trailer_plate="12R-014.39",
    containers=(ManifestContainer(number="MWCU6059784", size_type="42G1"),),
    seals=("VNH1234567",),
)
INDEX = ManifestIndex(Manifest(entries=(ENTRY,)))
CFG = VerdictConfig()


def fr(value: str, confidence: float = 0.95) -> FieldResult:
    return FieldResult(value, confidence, 3)


GOOD = Crossing(
    id="c1", lane_id="l1", started_at=0.0, ended_at=3.0,
    tractor_plate=fr("12C-123.45"), trailer_plate=fr("12R-014.39"),
    containers=(fr("MWCU6059784"),), seal=SealState(True, fr("VNH1234567")),
    declarations=("301234567890",),
)


def codes(crossing: Crossing) -> set[str]:
    return {r.code for r in decide(crossing, INDEX, CFG).reasons}


def test_everything_matches_clears() -> None:
    verdict = decide(GOOD, INDEX, CFG)
    assert verdict.decision == "CLEAR"
    assert verdict.reasons == ()
    assert verdict.declaration == "301234567890"


@pytest.mark.parametrize(
    ("change", "decision", "code"),
    [
        ({"containers": (fr("CSQU3054383"),)}, "HOLD", "container_mismatch"),
        ({"containers": ()}, "REVIEW", "container_unread"),
        ({"seal": SealState(False, None)}, "HOLD", "seal_missing"),
        ({"seal": SealState(True, fr("VNH7654321"))}, "HOLD", "seal_mismatch"),
        ({"seal": SealState(None, None)}, "REVIEW", "seal_unread"),
        ({"tractor_plate": fr("12C-999.99")}, "HOLD", "tractor_plate_mismatch"),
        ({"tractor_plate": None}, "REVIEW", "tractor_plate_unread"),
        ({"tractor_plate": fr("12C-123.45", 0.1)}, "REVIEW", "tractor_plate_low_confidence"),
        ({"seal": SealState(True, fr("VNH1234567", 0.1))}, "REVIEW", "seal_low_confidence"),
        ({"declarations": ("999999999999",)}, "HOLD", "declaration_not_in_manifest"),
        ({"declarations": ()}, "REVIEW", "declaration_unread"),
    ],
)
def test_each_rule(change: dict[str, object], decision: str, code: str) -> None:
    crossing = dataclasses.replace(GOOD, **change)  # type: ignore[arg-type]
    verdict = decide(crossing, INDEX, CFG)
    assert verdict.decision == decision
    assert code in {r.code for r in verdict.reasons}


def test_plate_written_differently_still_matches() -> None:
    assert codes(dataclasses.replace(GOOD, tractor_plate=fr("12C12345"))) == set()


def test_without_declaration_the_plate_finds_the_entry() -> None:
    verdict = decide(dataclasses.replace(GOOD, declarations=()), INDEX, CFG)
    assert verdict.decision == "REVIEW"
    assert verdict.declaration == "301234567890"
    assert {r.code for r in verdict.reasons} == {"declaration_unread"}


def test_unknown_vehicle_is_held() -> None:
    crossing = dataclasses.replace(GOOD, declarations=(), tractor_plate=fr("29C-111.11"), trailer_plate=None,
                                   containers=(fr("CSQU3054383"),))
    assert decide(crossing, INDEX, CFG).decision == "HOLD"


def test_plate_mismatch_policy_is_configurable() -> None:
    crossing = dataclasses.replace(GOOD, tractor_plate=fr("12C-999.99"))
    assert decide(crossing, INDEX, VerdictConfig(plate_mismatch="REVIEW")).decision == "REVIEW"


def test_ambiguous_container_goes_to_review() -> None:
    crossing = dataclasses.replace(GOOD, containers=(), container_candidates=("MWCU6059784", "MWCU6059785"))
    assert "container_ambiguous" in codes(crossing)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"tractor_plate": FieldResult("12C-999.99", 0.95, 1)}, "tractor_plate_mismatch_unconfirmed"),
        ({"seal": SealState(True, FieldResult("VNH7654321", 0.9, 1))}, "seal_mismatch_unconfirmed"),
        ({"containers": (FieldResult("CSQU3054383", 0.8, 1),)}, "container_mismatch_unconfirmed"),
    ],
)
def test_single_frame_contradiction_goes_to_review_not_hold(change: dict[str, object], code: str) -> None:
    verdict = decide(dataclasses.replace(GOOD, **change), INDEX, CFG)  # type: ignore[arg-type]
    assert verdict.decision == "REVIEW"
    assert code in {r.code for r in verdict.reasons}


def test_driverless_vehicle_needs_no_kiosk_declaration() -> None:
    igv = ManifestEntry(declaration="301234567899", fleet_id="IGV-07",
                        containers=(ManifestContainer(number="MWCU6059784"),), seals=("VNH1234567",))
    index = ManifestIndex(Manifest(entries=(igv,)))
    crossing = dataclasses.replace(GOOD, tractor_plate=None, trailer_plate=None, declarations=(),
                                   fleet_id=fr("IGV-07"))
    verdict = decide(crossing, index, CFG)
    assert verdict.decision == "CLEAR", verdict.reasons
    assert verdict.declaration == "301234567899"
    assert decide(dataclasses.replace(crossing, fleet_id=fr("IGV-08")), index, CFG).decision == "HOLD"


def test_one_confident_check_digit_verified_container_is_enough_to_hold() -> None:
    crossing = dataclasses.replace(GOOD, containers=(FieldResult("CSQU3054383", 0.95, 1),))
    assert decide(crossing, INDEX, CFG).decision == "HOLD"


def seal_obs(*serials: tuple[str, str]) -> tuple[Observation, ...]:
    return tuple(Observation("rear", float(i), SealRead(s, True, 0.7, None, src))  # type: ignore[arg-type]
                 for i, (s, src) in enumerate(serials))


def test_blurred_seal_reads_near_the_declared_serial_support_it() -> None:
    obs = seal_obs(("VNH1234S67", "ocr"), ("VNH1Z34567", "ocr"), ("VNH1234567", "ocr"))
    crossing = dataclasses.replace(GOOD, seal=SealState(True, FieldResult("VNH1234S67", 0.7, 1)), observations=obs)
    assert decide(crossing, INDEX, CFG).decision == "CLEAR"
    assert decide(crossing, INDEX, VerdictConfig(seal_match_distance=0)).decision == "REVIEW"


def test_a_differing_barcode_is_never_explained_away() -> None:
    obs = seal_obs(("VNH1234S67", "ocr"), ("VNH1234568", "barcode"), ("VNH1234567", "ocr"))
    crossing = dataclasses.replace(GOOD, seal=SealState(True, FieldResult("VNH1234568", 0.9, 2)), observations=obs)
    assert decide(crossing, INDEX, CFG).decision == "HOLD"


def test_far_seal_reads_do_not_support() -> None:
    obs = seal_obs(("VNH9934S67", "ocr"), ("VNH9934567", "ocr"))
    crossing = dataclasses.replace(GOOD, seal=SealState(True, FieldResult("VNH9934567", 0.9, 2)), observations=obs)
    assert decide(crossing, INDEX, CFG).decision == "HOLD"


def test_fleet_id_with_many_trips_picks_the_trip_by_container() -> None:
    trips = tuple(
        ManifestEntry(declaration=f"30123456789{i}", fleet_id="IGV-07",
                      containers=(ManifestContainer(number=n),), seals=("VNH1234567",))
        for i, n in enumerate(["CSQU3054383", "MWCU6059784"])
    )
    index = ManifestIndex(Manifest(entries=trips))
    crossing = dataclasses.replace(GOOD, tractor_plate=None, trailer_plate=None, declarations=(),
                                   fleet_id=fr("IGV-07"))
    verdict = decide(crossing, index, CFG)
    assert verdict.decision == "CLEAR" and verdict.declaration == "301234567891"
    unknown = dataclasses.replace(crossing, containers=(fr("TGHU1234560"),))
    assert decide(unknown, index, CFG).decision == "HOLD"  # which trip? nobody knows: hold


def test_weak_read_that_equals_the_manifest_clears() -> None:
    crossing = dataclasses.replace(GOOD, seal=SealState(True, fr("VNH1234567", 0.35)),
                                   tractor_plate=fr("12C-123.45", 0.4))
    assert decide(crossing, INDEX, CFG).decision == "CLEAR"
