"""Scene payloads: hex colours, clip scripts, transitions, references and totals."""

from __future__ import annotations

import pytest

from common.schemas import ReferenceImage, ReferenceImages, ScenePlan, Style, Transition
from tests.schemas import payloads as p
from tests.schemas.conftest import assert_invalid


def test_valid_plan_round_trips():
    plan = ScenePlan.model_validate(p.scene_plan())
    assert ScenePlan.model_validate_json(plan.model_dump_json()) == plan


@pytest.mark.parametrize("colour", ["#fff", "#FFFFFF", "#1a2B3c"])
def test_hex_colours_accepted(colour):
    assert Style.model_validate({**p.scene_plan()["style"], "color_palette": [colour]}).color_palette == [colour]


@pytest.mark.parametrize("colour", ["fff", "#ffff", "#12345g", "red", "#1234567", ""])
def test_bad_hex_colours_rejected(colour):
    assert_invalid(Style, {**p.scene_plan()["style"], "color_palette": ["#000", colour]}, "color_palette.1", "pattern")


def test_empty_palette_rejected():
    assert_invalid(Style, {**p.scene_plan()["style"], "color_palette": []}, "at least 1 item")


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("clip_scripts.1.clip_index", 0, "duplicate clip_index: 0 (each must be unique)"),
        ("characters", [{"id": "c1", "description": "a", "role": "r"}] * 2, "duplicate character id: c1"),
        ("scenes", [{"id": "s1", "description": "a"}] * 2, "duplicate scene id: s1"),
        ("transitions.0.to_clip", 7, "transitions[0] refers to clip 7, which is not in clip_scripts"),
        ("transitions.0.to_clip", 0, "two different clips"),
        ("transitions.0.type", "wipe", "'cut', 'crossfade' or 'fade'"),
        ("transitions.0.duration", -0.5, "greater than or equal to 0"),
        ("clip_scripts.0.characters", ["ghost"], "clip script 0 names unknown character(s) ['ghost']"),
        ("clip_scripts.0.scenes", ["moon"], "clip script 0 names unknown scene(s) ['moon']"),
        ("clip_scripts.0.end", 0.0, "clip script 0: start (0.0) must be before end (0.0)"),
        ("clip_scripts.0.clip_index", -1, "greater than or equal to 0"),
        ("clip_scripts.0.beat_intensity", "max", "'low', 'medium' or 'high'"),
        ("characters.0.id", "", "at least 1 character"),
    ],
)
def test_plan_rejects(path, value, fragment):
    assert_invalid(ScenePlan, p.with_(p.scene_plan(), path, value), fragment)


def test_transition_alone():
    assert Transition(from_clip=0, to_clip=1, type="cut", duration=0, rationale="").to_clip == 1


def test_reference_image_is_for_a_scene_or_a_character():
    assert ReferenceImage.model_validate(p.reference_image(scene=True)).is_scene_reference
    assert not ReferenceImage.model_validate(p.reference_image(scene=False)).is_scene_reference
    both = {**p.reference_image(), "character_id": "c1"}
    assert_invalid(ReferenceImage, both, "set scene_id or character_id, not both")
    neither = {**p.reference_image(), "scene_id": None}
    assert_invalid(ReferenceImage, neither, "set scene_id or character_id, not neither")


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("total_references", 3, "total_references (3) must equal the number of references listed (2)"),
        ("total_cost", "0.0100", "total_cost (0.0100) must equal the sum of the references' costs (0.0110)"),
        ("scene_references.0", p.reference_image(scene=False), "scene_references[0] is a character reference"),
        ("character_references.0", p.reference_image(scene=True), "character_references[0] is a scene reference"),
        ("status", "ok", "'success', 'partial' or 'failed'"),
        ("scene_references.0.cost", 0.0055, "floats are inexact"),
    ],
)
def test_reference_images_reject(path, value, fragment):
    assert_invalid(ReferenceImages, p.with_(p.reference_images(), path, value), fragment)


def test_reference_images_totals_are_exact_decimals():
    refs = ReferenceImages.model_validate(p.reference_images())
    assert str(refs.total_cost) == "0.0110"
    assert ReferenceImages.model_validate_json(refs.model_dump_json()) == refs
