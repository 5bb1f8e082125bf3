"""Face detection: the astronaut's one face, in the right place; none in faceless photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from reslab.features.faces import Face, detect_faces, draw_faces

# The astronaut's face, measured by hand on skimage.data.astronaut(): forehead to chin, ear to ear.
ASTRONAUT_FACE = Face(x=178, y=68, width=92, height=100)


def _iou(a: Face, b: Face) -> float:
    ix = max(0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    iy = max(0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = ix * iy
    return inter / (a.width * a.height + b.width * b.height - inter)


def test_the_astronaut_has_one_face_in_the_right_place():
    faces = detect_faces(Image.fromarray(data.astronaut()))
    assert len(faces) == 1
    assert _iou(faces[0], ASTRONAUT_FACE) > 0.6


def test_big_photos_give_boxes_in_full_size_pixels():
    big = Image.fromarray(data.astronaut()).resize((2048, 2048), Image.BICUBIC)
    faces = detect_faces(big)
    # the largest box is the face; at this size the cascade may add a small false alarm elsewhere
    scaled = Face(ASTRONAUT_FACE.x * 4, ASTRONAUT_FACE.y * 4, ASTRONAUT_FACE.width * 4, ASTRONAUT_FACE.height * 4)
    assert _iou(faces[0], scaled) > 0.6


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_no_faces_in_faceless_photos(name):
    assert detect_faces(Image.fromarray(getattr(data, name)())) == []


def test_a_face_found_at_two_scales_is_reported_once():
    faces = detect_faces(Image.fromarray(data.astronaut()), scale_factor=1.15)
    assert sum(_iou(f, ASTRONAUT_FACE) > 0.3 for f in faces) == 1


def test_boxes_are_drawn_on_the_outline():
    image = Image.new("RGB", (100, 80), (0, 0, 0))
    boxed = np.asarray(draw_faces(image, [Face(10, 20, 30, 40)]))
    assert tuple(boxed[20, 25]) == (255, 40, 40)  # top edge
    assert tuple(boxed[59, 39]) == (255, 40, 40)  # bottom-right corner
    assert tuple(boxed[40, 25]) == (0, 0, 0)  # inside stays untouched
    assert np.asarray(image).max() == 0  # the input is not modified


def test_cli_faces_json_and_png(tmp_path, capsys):
    from reslab.cli import main

    path = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=92)
    with pytest.raises(SystemExit) as exit_info:
        main(["faces", str(path), "--json", "--out", str(tmp_path / "boxed.png")])
    assert exit_info.value.code in (0, None)
    result = json.loads(capsys.readouterr().out)
    assert len(result["faces"]) == 1 and result["width"] == 512
    assert _iou(Face(**result["faces"][0]), ASTRONAUT_FACE) > 0.6
    with Image.open(tmp_path / "boxed.png") as im:
        assert im.size == (512, 512)
