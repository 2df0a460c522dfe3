"""The shapes world: scenes, held-out pairs, rendering, captions, questions, streams and files.

The checks recompute what they verify from the scene record with their own code (hues, referring
expressions, counts, relations), so a renderer or question generator that says the wrong thing fails.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alltokens.cli import main
from alltokens.data.shapes import (
    COLOURS,
    COLS,
    HELD_OUT,
    QA_KINDS,
    ROWS,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    canvas_captions,
    canvas_questions,
    caption,
    captions,
    objects_named,
    questions,
    random_scene,
    render,
    render_in_canvas,
    render_plain,
    scene_stream,
    write_shapes,
)

# Textbook hues in degrees, independent of the renderer's palette: each drawn colour must be nearest
# its own name.
HUES = {
    "red": 0,
    "orange": 30,
    "yellow": 58,
    "green": 120,
    "cyan": 182,
    "blue": 225,
    "purple": 275,
    "pink": 325,
}


def scenes(n: int, split: str = "any", seed: int = 0) -> list[Scene]:
    rng = random.Random(seed)
    return [random_scene(rng, split) for _ in range(n)]


# ---- scenes and the held-out split ---------------------------------------------------------------


def test_random_scene_is_deterministic_and_varied():
    assert scenes(50, seed=3) == scenes(50, seed=3)
    assert scenes(50, seed=3) != scenes(50, seed=4)
    counts = Counter(len(s.objects) for s in scenes(3000))
    assert set(counts) == {1, 2, 3} and all(800 < c < 1200 for c in counts.values())  # uniform
    assert len(random_scene(random.Random(0), n_objects=2).objects) == 2


def test_scene_rules_hold_for_random_scenes():
    for s in scenes(500):
        cells = [(o.row, o.col) for o in s.objects]
        assert cells == sorted(cells), "objects are in reading order"
        assert len(set(cells)) == len(cells)
        assert len({(o.colour, o.shape) for o in s.objects}) == len(s.objects)
        assert s.background in ("light", "dark")


def test_held_out_pairs_are_fixed_and_every_colour_and_shape_still_trains():
    assert len(HELD_OUT) == 6
    assert all(c in COLOURS and s in SHAPES for c, s in HELD_OUT)
    train = scenes(3000, "train")
    seen = {(o.colour, o.shape) for s in train for o in s.objects}
    assert not seen & HELD_OUT
    assert {c for c, _ in seen} == set(COLOURS) and {s for _, s in seen} == set(SHAPES)
    assert seen == {(c, s) for c in COLOURS for s in SHAPES} - HELD_OUT  # every other pair trains


def test_heldout_scenes_always_hold_a_held_out_pair_in_any_position():
    first_is_held_out = []
    for s in scenes(1000, "heldout"):
        pairs = [(o.colour, o.shape) for o in s.objects]
        assert set(pairs) & HELD_OUT
        first_is_held_out.append(pairs[0] in HELD_OUT)
    assert 0.3 < np.mean(first_is_held_out) < 0.95  # the held-out object is not always first
    assert any({(o.colour, o.shape) for o in s.objects} & HELD_OUT for s in scenes(200, "any"))


def test_scene_json_round_trip_and_bad_records():
    for s in scenes(100):
        assert Scene.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    good = scenes(1)[0].to_dict()
    obj = {"shape": "circle", "colour": "red", "size": "small", "row": 0, "col": 0}
    bad = [
        ({**good, "background": "grey"}, "background"),
        ({"objects": [{**obj, "colour": "brown"}], "background": "light"}, "colour 'brown'"),
        ({"objects": [{**obj, "row": 3}], "background": "light"}, "row must be the integer 0, 1 or 2, got 3"),
        (
            {"objects": [{**obj, "col": 1.0}], "background": "light"},
            "col must be the integer 0, 1 or 2, got 1.0",
        ),
        ({"objects": [obj, {**obj, "shape": "square"}], "background": "light"}, "share a grid cell"),
        ({"objects": [obj, {**obj, "col": 1}], "background": "light"}, "share a \\(colour, shape\\)"),
        ({"objects": [], "background": "light"}, "1 to 3 objects"),
        ({"objects": [obj]}, "not a scene record"),
        ({"objects": [{**obj, "angle": 3}], "background": "light"}, "not a scene record"),
    ]
    for record, message in bad:
        with pytest.raises(ValueError, match=message):
            Scene.from_dict(record)


def test_place_words():
    places = {(r, c): Obj("circle", "red", "small", r, c).place for r in range(3) for c in range(3)}
    assert places[(0, 0)] == "top left" and places[(2, 1)] == "bottom center"
    assert places[(1, 1)] == "center" and places[(1, 2)] == "middle right"
    assert all(p.split()[0] in ROWS + ("center",) and p.split()[-1] in COLS for p in places.values())


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown split 'test'"):
        random_scene(random.Random(0), "test")
    with pytest.raises(ValueError, match="n_objects must be 1 to 3"):
        random_scene(random.Random(0), n_objects=4)
    s = scenes(1)[0]
    for size in (15, 0, 5000, 64.0):
        with pytest.raises(ValueError, match="image size"):
            render(s, size)
        with pytest.raises(ValueError, match="image size"):
            render_plain(s, size)


# ---- rendering -----------------------------------------------------------------------------------


def hue_degrees(rgb: np.ndarray) -> np.ndarray:
    """Hue of (..., 3) RGB pixels in degrees, computed here rather than trusting the renderer."""
    rgb = rgb.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.degrees(np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)) % 360


def nearest_colour(hues: np.ndarray) -> str:
    """The colour name whose textbook hue is nearest the circular mean of `hues`."""
    mean = np.degrees(np.arctan2(np.sin(np.radians(hues)).mean(), np.cos(np.radians(hues)).mean())) % 360
    return min(HUES, key=lambda c: min(abs(mean - HUES[c]), 360 - abs(mean - HUES[c])))


def cell_objects(image: Image.Image) -> dict[tuple[int, int], np.ndarray]:
    """For each of the 3x3 cells, its strongly coloured pixels (chroma > 70 of 255), as (n, 3)."""
    pixels = np.asarray(image).astype(np.int16)  # (h, w, 3)
    size = pixels.shape[0]
    chroma = pixels.max(-1) - pixels.min(-1)  # (h, w): backgrounds are near grey, objects saturated
    edges = [round(i * size / 3) for i in range(4)]
    out = {}
    for r in range(3):
        for c in range(3):
            cell = pixels[edges[r] : edges[r + 1], edges[c] : edges[c + 1]]
            out[(r, c)] = cell[chroma[edges[r] : edges[r + 1], edges[c] : edges[c + 1]] > 70]
    return out


@pytest.mark.parametrize("how", ["varied", "canonical", "plain"])
def test_each_object_is_drawn_in_its_colour_in_its_cell_and_nothing_else(how):
    rng = random.Random(1)
    area = {"small": [], "large": []}
    for s in scenes(150, seed=2):
        image = draw(s, 64, how, rng)
        assert image.size == (64, 64) and image.mode == "RGB"
        found = cell_objects(image)
        where = {(o.row, o.col): o for o in s.objects}
        for cell, pixels in found.items():
            if cell not in where:
                assert len(pixels) == 0, f"colour outside any object in cell {cell} of {s}"
                continue
            obj = where[cell]
            assert len(pixels) >= 10, f"{obj} is (nearly) invisible"
            assert nearest_colour(hue_degrees(pixels)) == obj.colour, f"{obj} drawn in the wrong hue"
            area[obj.size].append((obj.shape, len(pixels)))
    for shape in SHAPES:  # every large object is bigger than every small one of the same shape
        large = [n for sh, n in area["large"] if sh == shape]
        small = [n for sh, n in area["small"] if sh == shape]
        assert min(large) > max(small), shape


def fill_ratio(pixels_mask: np.ndarray) -> float:
    """Share of the object's bounding box it covers: circle ~0.79, square ~1 (less rotated), triangle ~0.5."""
    rows, cols = np.nonzero(pixels_mask)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    return pixels_mask.sum() / box


def draw(s: Scene, size: int, how: str, rng: random.Random) -> Image.Image:
    if how == "plain":
        return render_plain(s, size)
    return render(s, size, rng if how == "varied" else None)


@pytest.mark.parametrize("how", ["varied", "canonical", "plain"])
def test_shapes_have_their_shape(how):
    rng = random.Random(5)
    for shape in SHAPES:
        for colour in COLOURS:
            pixels = np.asarray(draw(Scene((Obj(shape, colour, "large", 1, 1),), "dark"), 96, how, rng))
            fill = fill_ratio(np.ptp(pixels.astype(np.int16), axis=-1) > 70)
            low, high = {"circle": (0.70, 0.88), "square": (0.62, 1.0), "triangle": (0.38, 0.58)}[shape]
            if how != "varied" and shape == "square":
                low = 0.9  # unrotated
            assert low <= fill <= high, (shape, colour, how, fill)


def distinct_colours(image: Image.Image) -> int:
    return len(np.unique(np.asarray(image).reshape(-1, 3), axis=0))


def test_render_is_anti_aliased_and_plain_is_not():
    s = Scene((Obj("circle", "red", "large", 1, 1),), "light")
    assert distinct_colours(render(s, 64)) > 5  # background, fill and blends along the edge
    assert distinct_colours(render_plain(s, 64)) <= 3  # background, fill, outline


def test_rendering_is_deterministic_and_varies_with_the_rng():
    s = scenes(1, seed=9)[0]
    assert render(s, 48).tobytes() == render(s, 48).tobytes()
    a, b = render(s, 48, random.Random(1)), render(s, 48, random.Random(1))
    assert a.tobytes() == b.tobytes()
    c = render(s, 48, random.Random(2))
    assert np.abs(np.asarray(a, np.int16) - np.asarray(c, np.int16)).mean() > 1.0


@pytest.mark.parametrize("size", [16, 50, 100, 333, 1024])
def test_any_size_renders(size):
    s = scenes(1, seed=size)[0]
    for image in (render(s, size, random.Random(0)), render_plain(s, size)):
        assert image.size == (size, size) and image.mode == "RGB"


def test_dark_and_light_backgrounds():
    for background, plain in (("light", (255, 255, 255)), ("dark", (0, 0, 0))):
        s = Scene((Obj("square", "blue", "small", 0, 0),), background)
        corner = np.asarray(render(s, 64, random.Random(0)))[-8:, -8:].mean()
        assert (corner > 180) if background == "light" else (corner < 70)
        assert render_plain(s, 64).getpixel((63, 63)) == plain


# ---- captions ------------------------------------------------------------------------------------


def test_captions_name_every_object_and_can_be_read_back():
    for s in scenes(300, seed=11):
        objs = [(o.colour, o.shape) for o in s.objects]
        styles = captions(s)
        assert len(set(styles)) >= 3
        for text in styles:
            assert objects_named(text) == objs, text
        assert caption(s) == styles[0]
        assert all(f"{o.size} {o.colour} {o.shape}" in styles[0] and o.place in styles[0] for o in s.objects)
    s = scenes(1, seed=12)[0]
    drawn = {caption(s, random.Random(i)) for i in range(60)}
    assert len(drawn) > 3 and drawn <= set(captions(s))


def test_canonical_caption_wording():
    s = Scene((Obj("circle", "red", "large", 0, 0), Obj("square", "orange", "small", 1, 1)), "light")
    assert caption(s) == "a large red circle at the top left and a small orange square in the center"
    assert "an orange square" in " | ".join(captions(s))


@pytest.mark.parametrize(
    "text, pairs",
    [
        ("A Red Circle, and a big BLUE square!", [("red", "circle"), ("blue", "square")]),
        ("a circle that is red and a square", [("red", "circle")]),
        ("a triangle which is violet", [("purple", "triangle")]),
        ("two magenta squares", [("pink", "square")]),
        ("a green, small triangle next to a cyan circle", [("green", "triangle"), ("cyan", "circle")]),
        ("a square and something red", []),
        ("", []),
    ],
)
def test_objects_named_reads_free_text(text, pairs):
    assert objects_named(text) == pairs


# ---- questions -----------------------------------------------------------------------------------


def resolve(description: str, s: Scene) -> list[Obj]:
    """The objects of `s` a referring expression such as 'the small red object at the top left' fits."""
    description = description.removeprefix("the ")
    place = re.search(r" (?:at the|in the) (.+)$", description)
    if place:
        description = description[: place.start()]
    words = description.split()
    return [
        o
        for o in s.objects
        if all(w in (o.colour, o.shape, o.size, "object") for w in words)
        and (place is None or place.group(1) == o.place)
    ]


def check(qa, s: Scene) -> None:
    """Recompute the answer of one question from the scene; every phrasing must be understood here."""
    q, objs = qa.question, s.objects
    named = {(o.colour, o.shape): o for o in objs}
    if m := re.fullmatch(r"(?:what colour is|what is the colour of|which colour is) (.+)\?", q):
        (o,) = resolve(m[1], s)  # exactly one object fits: the question is not ambiguous
        assert qa.kind == "colour" and o.colour not in m[1] and qa.answer == o.colour
    elif m := re.fullmatch(r"(?:what shape is|what is the shape of|which shape is) (.+)\?", q):
        (o,) = resolve(m[1], s)
        assert qa.kind == "shape" and o.shape not in m[1] and qa.answer == o.shape
    elif m := re.fullmatch(r"where is the (\w+) (\w+)(?: located)?\?", q):
        assert qa.kind == "position" and qa.answer == named[(m[1], m[2])].place
    elif m := re.fullmatch(r"how many (\w+) are (?:there|in the picture)\?", q):
        thing = m[1]
        n = len(objs) if thing in ("objects", "shapes") else sum(o.shape + "s" == thing for o in objs)
        assert qa.kind == "count" and qa.answer == str(n)
    elif m := re.fullmatch(
        r"is the (\w+) (\w+) (left or right of|to the left or to the right of|above or below|higher or lower "
        r"than) the (\w+) (\w+)\?",
        q,
    ):
        a, b = named[(m[1], m[2])], named[(m[4], m[5])]
        axis = "col" if "left" in m[3] else "row"
        assert getattr(a, axis) != getattr(b, axis), "a relation asked between objects in one column/row"
        first, last = m[3].removeprefix("to the ").replace(" than", "").split(" or ")
        first, last = first.removesuffix(" of"), last.removeprefix("to the ").removesuffix(" of")
        assert qa.kind == "relation" and qa.answer == (first if getattr(a, axis) < getattr(b, axis) else last)
    elif m := re.fullmatch(r"is there an? (\w+) (\w+)(?: in the picture)?\?", q):
        assert qa.kind == "exists" and qa.answer == ("yes" if (m[1], m[2]) in named else "no")
        assert (m[1], m[2]) not in HELD_OUT or qa.answer == "yes"
    else:
        raise AssertionError(f"unrecognised question {q!r}")


@pytest.mark.parametrize("with_rng", [False, True])
def test_every_answer_is_right_and_every_reference_unique(with_rng):
    rng = random.Random(4) if with_rng else None
    kinds = Counter()
    for s in scenes(400, seed=13):
        qas = questions(s, rng)
        for qa in qas:
            check(qa, s)
            assert qa.answer == qa.answer.lower() and len(qa.answer.split()) <= 2
        kinds.update(qa.kind for qa in qas)
        exists = Counter(qa.answer for qa in qas if qa.kind == "exists")
        assert exists["yes"] == exists["no"]  # balanced in every scene
        sides = Counter(qa.answer for qa in qas if qa.kind == "relation")
        assert (
            sides["left"] == sides["right"]
            and sides["above"] + sides["higher"] == sides["below"] + sides["lower"]
        )
        assert len({qa.question for qa in qas}) == len(qas)
    assert set(kinds) == set(QA_KINDS)


def test_questions_use_each_disambiguation():
    same_shape = Scene((Obj("circle", "red", "large", 0, 0), Obj("circle", "blue", "small", 0, 2)), "light")
    same_size = Scene((Obj("circle", "red", "large", 0, 0), Obj("circle", "blue", "large", 2, 0)), "dark")
    asked = {qa.question: qa.answer for s in (same_shape, same_size) for qa in questions(s)}
    assert asked["what colour is the large circle?"] == "red"
    assert asked["what colour is the circle at the bottom left?"] == "blue"
    assert asked["what shape is the red object?"] == "circle"
    assert asked["is the red circle left or right of the blue circle?"] == "left"
    assert asked["is the blue circle left or right of the red circle?"] == "right"
    assert asked["is the blue circle above or below the red circle?"] == "below"
    assert asked["how many circles are there?"] == "2" and asked["how many squares are there?"] == "0"


def test_questions_are_deterministic_and_the_rng_varies_them():
    s = scenes(1, seed=21)[0]
    assert questions(s) == questions(s)
    assert questions(s, random.Random(1)) == questions(s, random.Random(1))
    phrasings = {qa.question for i in range(20) for qa in questions(s, random.Random(i))}
    assert len(phrasings) > len(questions(s))
    negatives = Counter(qa.question for t in scenes(200, seed=5) for qa in questions(t) if qa.answer == "no")
    assert len(negatives) > 15  # the absent pairs asked about differ from scene to scene (18 train pairs)


# ---- streams and files ---------------------------------------------------------------------------


def test_stream_is_random_access_and_resumes_exactly():
    a, b = scene_stream(7, "heldout", 32), scene_stream(7, "heldout", 32)
    first = [next(it) for it in [iter(a)] for _ in range(6)]
    assert [s for _, s in first] == [b[i][1] for i in range(6)]
    assert all(x.tobytes() == b[i][0].tobytes() for i, (x, _) in enumerate(first))
    b.seek(4)
    image, scene = next(iter(b))
    assert scene == first[4][1] and image.tobytes() == first[4][0].tobytes() and image.size == (32, 32)
    assert scene_stream(8, "heldout", 32)[0][1] != a[0][1] or scene_stream(8, "heldout", 32)[1][1] != a[1][1]
    assert all({(o.colour, o.shape) for o in a[i][1].objects} & HELD_OUT for i in range(20))
    assert [a.scene(i) for i in range(6)] == [s for _, s in first]  # the scene without the drawing
    with pytest.raises(IndexError):
        a[-1]
    with pytest.raises(IndexError):
        a.scene(-1)
    with pytest.raises(ValueError, match="unknown split"):
        scene_stream(0, "val")
    with pytest.raises(ValueError, match="image size"):
        scene_stream(0, "train", 8)


def test_write_shapes_writes_images_and_records(tmp_path: Path):
    out = tmp_path / "shapes"
    path = write_shapes(out, n=5, size=32, seed=3)
    assert path == out / "scenes.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    stream = scene_stream(3, "train", 32)
    assert [r["file"] for r in records] == [f"images/{i:06d}.png" for i in range(5)]
    for i, r in enumerate(records):
        image, scene = stream[i]
        with Image.open(out / r["file"]) as saved:
            assert saved.size == (32, 32) and saved.tobytes() == image.tobytes()
        assert Scene.from_dict(r["scene"]) == scene
        assert r["captions"] == captions(scene)
        assert r["questions"] == [
            {"kind": q.kind, "question": q.question, "answer": q.answer} for q in questions(scene)
        ]
    assert sorted(p.name for p in out.iterdir()) == ["images", "scenes.jsonl"]

    (out / ".scenes.jsonl.x1.tmp").write_text("")  # left by an interrupted run
    (out / "images" / ".000007.png.x2.tmp").write_bytes(b"")
    write_shapes(out, n=2, size=32, seed=3)  # a previous shapes folder is overwritten, stale files go
    assert sorted(p.name for p in out.iterdir()) == ["images", "scenes.jsonl"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.png", "000001.png"]
    assert len(path.read_text().splitlines()) == 2


def test_write_shapes_refuses_other_folders_and_bad_values(tmp_path: Path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty and is not a shapes data set"):
        write_shapes(foreign, n=2)
    fake = tmp_path / "fake"  # looks like ours but its images folder holds something else
    (fake / "images").mkdir(parents=True)
    (fake / "scenes.jsonl").write_text("")
    (fake / "images" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a shapes data set"):
        write_shapes(fake, n=2)
    assert (foreign / "notes.txt").read_text() == "keep me" and (fake / "images" / "holiday.jpg").exists()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        write_shapes(a_file, n=2)
    for kwargs, message in [
        ({"n": 0}, "positive integer"),
        ({"n": -3}, "positive integer"),
        ({"n": 2, "size": 15}, "image size"),
        ({"n": 2, "split": "test"}, "unknown split"),
    ]:
        with pytest.raises(ValueError, match=message):
            write_shapes(tmp_path / "new", **kwargs)
    assert not (tmp_path / "new").exists()


def test_cli_data_shapes(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "set"
    args = [
        "data",
        "shapes",
        "--n",
        "4",
        "--size",
        "24",
        "--out",
        str(out),
        "--seed",
        "2",
        "--split",
        "heldout",
    ]
    assert main(args) == 0
    assert "wrote 4 24x24 heldout shapes scenes" in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "scenes.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert all({(o["colour"], o["shape"]) for o in r["scene"]["objects"]} & HELD_OUT for r in records)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("")
    assert main(["data", "shapes", "--n", "2", "--out", str(tmp_path / "other")]) == 2
    assert "not a shapes data set" in capsys.readouterr().err
    assert main(["data", "shapes", "--n", "0", "--out", str(tmp_path / "zero")]) == 2
    assert "positive integer" in capsys.readouterr().err


def test_sizes_constant():
    assert (
        SIZES == ("small", "large")
        and ROWS == ("top", "middle", "bottom")
        and COLS == ("left", "center", "right")
    )


# ---- small objects in large scenes ---------------------------------------------------------------


@pytest.mark.parametrize(("canvas", "aligned"), [((144, 144), True), ((192, 96), True), ((100, 70), False)])
def test_a_large_scene_is_the_scene_at_its_size_on_its_background(canvas, aligned):
    rng = random.Random(3)
    corners = set()
    for s in scenes(40, seed=31):
        image, (x, y) = render_in_canvas(s, 48, canvas, rng, aligned)
        assert image.size == canvas and image.mode == "RGB"
        corners.add((x, y))
        if aligned:
            assert x % 48 == 0 and y % 48 == 0
        part = image.crop((x, y, x + 48, y + 48))  # one tile: the scene at its own scale
        found = cell_objects(part)
        where = {(o.row, o.col): o for o in s.objects}
        for cell, pixels in found.items():
            if cell not in where:
                assert len(pixels) == 0, (s, cell)
                continue
            assert len(pixels) >= 10 and nearest_colour(hue_degrees(pixels)) == where[cell].colour
        pixels = np.asarray(image).astype(np.int16)  # (h, w, 3)
        outside = np.ones(pixels.shape[:2], dtype=bool)
        outside[y : y + 48, x : x + 48] = False
        assert not (np.ptp(pixels, axis=-1) > 70)[outside].any(), "colour outside the scene"
        inside = np.asarray(part).astype(np.int16).reshape(-1, 3)
        scene_background = np.median(inside[np.ptp(inside, axis=-1) < 20], axis=0)
        assert np.abs(np.median(pixels[outside], axis=0) - scene_background).max() <= 4  # one background
    assert len(corners) > 3


def test_large_scenes_are_deterministic_and_streams_place_them():
    s = scenes(1, seed=8)[0]
    a = render_in_canvas(s, 48, (144, 96), random.Random(5))
    b = render_in_canvas(s, 48, (144, 96), random.Random(5))
    assert a[1] == b[1] and a[0].tobytes() == b[0].tobytes()
    stream = scene_stream(2, "train", 48, canvas=(144, 96))
    image, scene = stream[6]
    assert image.size == (144, 96) and scene == scene_stream(2, "train", 48)[6][1]
    assert image.tobytes() == scene_stream(2, "train", 48, canvas=[144, 96])[6][0].tobytes()
    for kwargs, message in [
        ({"canvas": (40, 96)}, "canvas must be 48"),
        ({"canvas": (144, 5000)}, "canvas must be 48"),
    ]:
        with pytest.raises(ValueError, match=message):
            scene_stream(0, "train", 48, **kwargs)
    with pytest.raises(ValueError, match="does not fit"):
        render(s, 48, None, canvas=(96, 96), at=(60, 0))


def test_large_scene_words_are_the_scenes_own_minus_places():
    kept_kinds = Counter()
    for i, s in enumerate(scenes(300, seed=17)):
        every = questions(s, random.Random(i))
        kept = canvas_questions(s, random.Random(i))
        assert set(kept) <= set(every)
        for qa in kept:
            check(qa, s)  # still right: the same scene, only moved
            assert qa.kind != "position" and not re.search(
                r" (?:at|in) the (?:top|middle|bottom|center)", qa.question
            )
        for kind in ("count", "relation", "exists"):  # nothing of these names a cell: all kept
            assert [q for q in kept if q.kind == kind] == [q for q in every if q.kind == kind]
        dropped = [q for q in every if q not in kept and q.kind in ("colour", "shape")]
        assert all(" at the " in q.question or " in the center" in q.question for q in dropped)
        kept_kinds.update(q.kind for q in kept)
        large_captions = canvas_captions(s)
        assert large_captions and set(large_captions) <= set(captions(s))
        for text in large_captions:
            assert set(objects_named(text)) == {o.pair for o in s.objects}
            assert not any(w in text.split() for w in ("top", "bottom", "left", "right", "center", "middle"))
    assert set(kept_kinds) == set(QA_KINDS) - {"position"}
