from __future__ import annotations

from appliance.config import AssemblyConfig
from appliance.lanes.assembly import LaneAssembler, vote
from appliance.reads import BBox, ContainerRead, DeclarationRead, Observation, PlateRead, SealRead

BOX = BBox(0, 0, 10, 10)


def plate(text: str, conf: float = 0.9) -> PlateRead:
    return PlateRead(text, "VN", "one_line", "yellow", conf, BOX)


def make() -> LaneAssembler:
    return LaneAssembler("l1", AssemblyConfig(close_after_idle_s=1.0), ["front", "rear"])


def test_vote_prefers_weight_then_count() -> None:
    obs = Observation("front", 0.0, plate("A"))
    ranked = vote([("A", 0.9, obs), ("B", 0.5, obs), ("B", 0.5, obs), ("A", 0.2, obs)])
    assert [v.value for v in ranked] == ["A", "B"]
    assert ranked[0].votes == 2


def test_one_crossing_per_passage_with_votes() -> None:
    lane = make()
    closed = []
    t = 100.0
    for i in range(10):  # vehicle in view for 2 s at 5 fps
        ts = t + i * 0.2
        closed += lane.on_motion("front", ts, True)
        text = "12C-123.45" if i != 3 else "12C-128.45"  # one misread
        lane.add("front", Observation("front", ts, plate(text)))
        lane.add("rear", Observation("rear", ts, ContainerRead("MWCU6059784", 0.9, BOX, "42G1")))
        lane.add("rear", Observation("rear", ts, SealRead("VNH1234567", True, 0.8, BOX, "both")))
    lane.add("kiosk", Observation("kiosk", t + 1, DeclarationRead("301234567890")))
    assert closed == []
    for i in range(10):  # empty lane
        closed += lane.on_motion("front", t + 2 + i * 0.2, False)
    assert len(closed) == 1
    c = closed[0]
    assert c.tractor_plate is not None and c.tractor_plate.value == "12C-123.45"
    assert c.tractor_plate.votes == 9
    assert 0.7 < c.tractor_plate.confidence < 0.9  # the misread lowers the confidence
    assert [x.value for x in c.containers] == ["MWCU6059784"]
    assert c.size_types == ("42G1",)
    assert c.seal.present is True and c.seal.serial is not None
    assert c.declarations == ("301234567890",)
    assert c.started_at == t
    assert lane.on_motion("front", t + 10, False) == []


def test_scanner_read_before_motion_joins_next_crossing() -> None:
    lane = make()
    lane.add("kiosk", Observation("kiosk", 50.0, DeclarationRead("301234567890")))
    lane.on_motion("rear", 52.0, True)
    closed = lane.on_motion("rear", 60.0, False)
    assert closed[0].declarations == ("301234567890",)


def test_stale_scanner_read_is_not_adopted() -> None:
    lane = make()
    lane.add("kiosk", Observation("kiosk", 10.0, DeclarationRead("301234567890")))
    lane.on_motion("rear", 100.0, True)
    closed = lane.on_motion("rear", 110.0, False)
    assert closed[0].declarations == ()


def test_absent_seal_needs_repeated_evidence() -> None:
    lane = make()
    lane.on_motion("rear", 0.0, True)
    lane.add("rear", Observation("rear", 0.0, SealRead(None, False, 0.7, None)))
    one = lane.on_motion("rear", 5.0, False)[0]
    assert one.seal.present is None
    lane.on_motion("rear", 10.0, True)
    for ts in (10.0, 10.2):
        lane.add("rear", Observation("rear", ts, SealRead(None, False, 0.7, None)))
    two = lane.on_motion("rear", 15.0, False)[0]
    assert two.seal.present is False


def test_motion_on_non_camera_source_opens_nothing() -> None:
    lane = make()
    lane.on_motion("kiosk", 0.0, True)
    assert not lane.is_open
    assert lane.flush() == []


def test_crossing_that_never_ends_is_closed() -> None:
    lane = LaneAssembler("l1", AssemblyConfig(close_after_idle_s=1.0, max_crossing_s=5.0), ["front"])
    closed = []
    for i in range(40):
        closed += lane.on_motion("front", i * 0.2, True)
    assert len(closed) == 1


def unverified(top: str) -> ContainerRead:
    return ContainerRead(top, 0.3, BOX, None, (top, "MWCU2246956"), verified=False)


def test_unverified_frames_that_agree_settle_by_consensus() -> None:
    lane = make()
    lane.on_motion("rear", 0.0, True)
    for i in range(4):
        lane.add("rear", Observation("rear", i * 0.2, unverified("MWCU2246961")))
    c = lane.on_motion("rear", 5.0, False)[0]
    assert [x.value for x in c.containers] == ["MWCU2246961"]
    assert c.containers[0].method == "consensus"
    assert c.container_candidates[:2] == ("MWCU2246961", "MWCU2246956")


def test_unverified_frames_that_disagree_stay_candidates() -> None:
    lane = make()
    lane.on_motion("rear", 0.0, True)
    for i, top in enumerate(["MWCU2246961", "MWCU2246956", "MWCU2246961", "MWCU2246956"]):
        lane.add("rear", Observation("rear", i * 0.2, unverified(top)))
    c = lane.on_motion("rear", 5.0, False)[0]
    assert c.containers == ()
    assert "MWCU2246961" in c.container_candidates


def test_verified_read_beats_consensus() -> None:
    lane = make()
    lane.on_motion("rear", 0.0, True)
    for i in range(4):
        lane.add("rear", Observation("rear", i * 0.2, unverified("MWCU2246961")))
    lane.add("rear", Observation("rear", 1.0, ContainerRead("CSQU3054383", 0.9, BOX)))
    c = lane.on_motion("rear", 5.0, False)[0]
    assert [x.value for x in c.containers] == ["CSQU3054383"]
    assert c.containers[0].method == "read"


def test_settled_needs_enough_confident_agreeing_frames_of_the_same_role() -> None:
    lane = make()
    assert lane.settled("rear").plates == frozenset()  # nothing open
    lane.on_motion("rear", 0.0, True)
    for i in range(2):
        lane.add("rear", Observation("rear", 0.2 * i, plate("15C-123.45", 0.95)))
    assert lane.settled("rear").plates == frozenset()  # two frames are not enough
    lane.add("rear", Observation("rear", 0.4, plate("15C-123.45", 0.95)))
    assert lane.settled("rear").plates == {"15C-123.45"}
    assert lane.settled("front").plates == frozenset()  # another camera's view of the vehicle
    for i in range(2):  # disagreement: the value no longer holds 75 % of this camera's reads
        lane.add("rear", Observation("rear", 0.6 + 0.2 * i, plate("15C-128.45", 0.9)))
    assert lane.settled("rear").plates == frozenset()


def test_settled_containers_count_only_verified_confident_reads() -> None:
    lane = make()
    lane.on_motion("rear", 0.0, True)
    for i in range(3):
        lane.add("rear", Observation("rear", 0.2 * i, ContainerRead("MWCU6059784", 0.6, BOX, verified=True)))
    assert lane.settled("rear").containers == frozenset()  # not confident enough
    for i in range(8):  # confident reads, but short of 75 % of all this camera's reads
        lane.add("rear", Observation("rear", 1 + 0.1 * i, ContainerRead("MWCU6059784", 0.95, BOX, verified=True)))
    assert lane.settled("rear").containers == frozenset()
    lane.add("rear", Observation("rear", 1.9, ContainerRead("MWCU6059784", 0.95, BOX, verified=True)))
    assert lane.settled("rear").containers == {"MWCU6059784"}
    closed = lane.on_motion("rear", 10.0, False)
    assert len(closed) == 1 and lane.settled("rear").containers == frozenset()


def test_seal_missing_only_when_no_frame_showed_anything_seal_like() -> None:
    def passage(reads: list[SealRead]) -> bool | None:
        lane = make()
        lane.on_motion("rear", 0.0, True)
        for i, read in enumerate(reads):
            lane.add("rear", Observation("rear", 0.2 * i, read))
        (crossing,) = lane.flush()
        return crossing.seal.present

    absent = SealRead(None, False, 0.5, None, "none")
    unreadable = SealRead(None, True, 0.3, BOX, "ocr")
    assert passage([absent, absent]) is False
    assert passage([absent]) is None  # one frame is not enough
    assert passage([unreadable, absent, absent, absent]) is False  # one stray frame does not count
    assert passage([unreadable, unreadable, absent, absent]) is None  # something was there, unread
