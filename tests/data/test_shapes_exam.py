"""The held-out exam: the same pictures and questions for every model, scored per kind, with a mock model."""

from __future__ import annotations

import pytest

from alltokens.data.shapes import HELD_OUT, caption, exam_items, render_plain, take_exam


class Oracle:
    """Knows every answer of `items`, and says "no" to every question of the kinds in `wrong_on`."""

    def __init__(self, items, wrong_on=()):
        self.truth = {(id(it.image), qa.question): qa.answer for it in items for qa in it.asked}
        self.scenes = {id(it.image): it.scene for it in items}
        self.kinds = {qa.question: qa.kind for it in items for qa in it.asked}
        self.wrong_on = set(wrong_on)

    def ask(self, image, question, **sampling):
        return "no" if self.kinds[question] in self.wrong_on else self.truth[id(image), question]

    def caption(self, image, **sampling):
        return caption(self.scenes[id(image)])


def test_items_are_held_out_scenes_with_one_question_per_kind_and_repeat_exactly():
    items = exam_items(8, 48)
    again = exam_items(8, 48)
    for a, b in zip(items, again):
        assert a.scene == b.scene and a.asked == b.asked and a.image.tobytes() == b.image.tobytes()
        assert any(o.pair in HELD_OUT for o in a.scene.objects)
        kinds = [qa.kind for qa in a.asked]
        assert len(kinds) == len(set(kinds)) and a.image.size == (48, 48)
    assert [it.scene for it in exam_items(8, 48, seed=1)] != [it.scene for it in items]
    seen = exam_items(8, 48, split="train")
    assert not any(o.pair in HELD_OUT for it in seen for o in it.scene.objects)


def test_canvas_items_are_large_pictures_asked_no_position_questions():
    items = exam_items(6, 48, canvas=(144, 96))
    assert all(it.image.size == (144, 96) for it in items)
    assert all(qa.kind != "position" for it in items for qa in it.asked)
    with pytest.raises(ValueError, match="give draw or canvas, not both"):
        exam_items(2, 48, lambda scene, size, rng: render_plain(scene, size), canvas=(96, 96))


def test_scores_are_exact_match_overall_and_per_kind():
    items = exam_items(10, 48)
    perfect = take_exam(Oracle(items), items)
    assert perfect.exact_match == 1.0 and perfect.captions == 1.0
    assert perfect.questions == sum(len(it.asked) for it in items)
    score = take_exam(Oracle(items, wrong_on={"colour"}), items, captions=False)
    assert score.per_kind["colour"] == 0.0 and score.per_kind["shape"] == 1.0 and score.captions is None
    colour = sum(qa.kind == "colour" for it in items for qa in it.asked)
    assert score.exact_match == pytest.approx(1 - colour / score.questions)
    assert list(score.per_kind)[:2] == ["colour", "shape"] and "captions" not in score.summary()
    with pytest.raises(ValueError, match="at least one scene"):
        take_exam(Oracle([]), [])
