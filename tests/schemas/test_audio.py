"""Audio payloads: spans, durations, confidence, beats and boundaries inside the song."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.schemas import AudioAnalysis, ClipBoundary, Mood, SongStructure
from tests.schemas import payloads as p
from tests.schemas.conftest import assert_invalid


def test_valid_analysis_round_trips():
    analysis = AudioAnalysis.model_validate(p.audio_analysis())
    assert AudioAnalysis.model_validate_json(analysis.model_dump_json()) == analysis


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("bpm", 0, "greater than 0"),
        ("bpm", 1000, "less than or equal to 400"),
        ("duration", 0, "greater than 0"),
        ("beat_timestamps", [1.0, 0.5], "strictly increasing: beat 1 (0.5) is not after beat 0 (1.0)"),
        ("beat_timestamps", [1.0, 1.0], "strictly increasing"),
        ("beat_timestamps", [1.0, 31.0], "the last beat (31.0) is after the song's end (30.0)"),
        ("beat_timestamps", [-1.0, 1.0], "greater than or equal to 0"),
        ("song_structure.1.end", 40.0, "song_structure[1] ends at 40.0, after the song's end"),
        ("song_structure.0.start", 9.0, "song section 'intro': start (9.0) must be before end (8.0)"),
        ("song_structure.0.type", "solo", "'intro', 'verse', 'chorus', 'bridge' or 'outro'"),
        ("song_structure.0.energy", "extreme", "'low', 'medium' or 'high'"),
        ("lyrics.0.timestamp", 31.0, "lyrics[0] at 31.0 is after the song's end"),
        ("mood.confidence", 1.5, "less than or equal to 1"),
        ("mood.confidence", -0.1, "greater than or equal to 0"),
        ("mood.energy_level", "loud", "'low', 'medium' or 'high'"),
        ("clip_boundaries.1", {"start": 4.0, "end": 9.0, "duration": 5.0}, "before clip_boundaries[0] ends"),
        ("clip_boundaries.1", {"start": 25.0, "end": 35.0, "duration": 10.0}, "clip_boundaries[1] ends at 35.0"),
        ("bpm", float("nan"), "finite number"),
    ],
)
def test_analysis_rejects(path, value, fragment):
    assert_invalid(AudioAnalysis, p.with_(p.audio_analysis(), path, value), fragment)


def test_beats_may_sit_on_the_last_instant_within_tolerance():
    AudioAnalysis.model_validate(p.with_(p.audio_analysis(), "beat_timestamps", [0.5, 30.04]))


def test_empty_lists_are_allowed():
    payload = {**p.audio_analysis(), "beat_timestamps": [], "lyrics": [], "clip_boundaries": [], "song_structure": []}
    assert AudioAnalysis.model_validate(payload).beat_timestamps == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"start": 5.0, "end": 5.0, "duration": 0.1}, "start (5.0) must be before end (5.0)"),
        ({"start": 0.0, "end": 5.0, "duration": 5.2}, "duration (5.2) must equal end - start (5.000) within 0.05 s"),
        ({"start": -1.0, "end": 5.0, "duration": 6.0}, "greater than or equal to 0"),
    ],
)
def test_clip_boundary_rejects(payload, fragment):
    assert_invalid(ClipBoundary, payload, fragment)


@given(
    start=st.floats(min_value=0, max_value=600, allow_nan=False),
    length=st.floats(min_value=0.01, max_value=60, allow_nan=False),
    error=st.floats(min_value=-0.049, max_value=0.049),
)
def test_clip_boundary_duration_within_tolerance_is_accepted(start, length, error):
    end = start + length
    boundary = ClipBoundary(start=start, end=end, duration=max(end - start + error, 0.001))
    assert boundary.end > boundary.start


@given(
    start=st.floats(min_value=0, max_value=600, allow_nan=False),
    length=st.floats(min_value=0.01, max_value=60, allow_nan=False),
    error=st.floats(min_value=0.06, max_value=10),
)
def test_clip_boundary_duration_off_by_more_than_tolerance_is_rejected(start, length, error):
    end = start + length
    assert_invalid(
        ClipBoundary, {"start": start, "end": end, "duration": end - start + error}, "must equal end - start"
    )


@given(st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=30, unique=True))
def test_sorted_beats_inside_the_song_are_accepted(beats):
    analysis = AudioAnalysis.model_validate({**p.audio_analysis(), "beat_timestamps": sorted(beats)})
    assert list(analysis.beat_timestamps) == sorted(beats)


def test_song_structure_and_mood_alone():
    assert SongStructure(type="verse", start=1, end=2, energy="medium").end == 2
    assert Mood(primary="calm", energy_level="low", confidence=0).secondary is None
    assert_invalid(Mood, {"primary": "", "energy_level": "low", "confidence": 0.5}, "primary")
