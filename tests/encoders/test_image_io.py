from io import BytesIO

import numpy as np
import pandas as pd
import pytest
from PIL import ExifTags, Image

from skmm.encoders._image import CNNImageEncoder
from skmm.encoders._image_io import decode_image, resolve_input_shape

FAST = dict(image_size=8, channels=(4, 8), batch_size=4, random_state=0)


def _column(cells, name="photo"):
    return pd.DataFrame({name: pd.Series(cells, dtype=object)})


def _sixteen_bit_gradient():
    """A 16-bit grey ramp over the whole range, 0 to 65535."""
    ramp = np.linspace(0, 65535, 6 * 10).round().astype(np.uint16)
    return ramp.reshape(6, 10)


def _encoded(image, fmt, **params):
    buffer = BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("source", ["path", "bytes", "pil"])
def test_16_bit_png_is_scaled_to_the_8_bit_range(tmp_path, mode, source):
    pixels = _sixteen_bit_gradient()
    png = _encoded(Image.fromarray(pixels), "PNG")
    path = tmp_path / "depth.png"
    path.write_bytes(png)
    assert Image.open(path).mode == "I;16"
    cell = {
        "path": path,
        "bytes": png,
        "pil": Image.open(BytesIO(png)),
    }[source]

    decoded = decode_image(cell, mode, pixels.shape, "photo", 0)

    expected = np.rint(pixels / 257).astype(np.uint8)
    assert decoded.dtype == np.uint8
    for channel in range(decoded.shape[2]):
        np.testing.assert_array_equal(decoded[:, :, channel], expected)


def test_32_bit_integer_image_is_read_as_16_or_8_bits():
    sixteen = _sixteen_bit_gradient().astype(np.int32)
    eight = np.arange(60, dtype=np.int32).reshape(6, 10) * 4
    assert Image.fromarray(sixteen).mode == Image.fromarray(eight).mode == "I"

    decoded_sixteen = decode_image(Image.fromarray(sixteen), "L", (6, 10), "c", 0)
    decoded_eight = decode_image(Image.fromarray(eight), "L", (6, 10), "c", 0)

    np.testing.assert_array_equal(decoded_sixteen[:, :, 0], np.rint(sixteen / 257))
    np.testing.assert_array_equal(decoded_eight[:, :, 0], eight)


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_32_bit_float_image_is_scaled_not_rounded_to_black(mode, scale):
    ramp = np.linspace(0, 1, 60, dtype=np.float32).reshape(6, 10)
    image = Image.fromarray(ramp * np.float32(scale))
    assert image.mode == "F"

    decoded = decode_image(image, mode, (6, 10), "photo", 0)

    expected = np.rint(ramp.astype(np.float64) * 255).astype(np.uint8)
    for channel in range(decoded.shape[2]):
        np.testing.assert_allclose(decoded[:, :, channel], expected, atol=1)
    assert decoded.max() == 255


def test_32_bit_float_image_file_and_out_of_range_values():
    ramp = np.linspace(0, 1, 60, dtype=np.float32).reshape(6, 10)
    tiff = _encoded(Image.fromarray(ramp), "TIFF")
    assert decode_image(tiff, "L", (6, 10), "photo", 0).max() == 255

    too_bright = Image.fromarray(ramp * 1000)
    with pytest.raises(ValueError, match=r"column 'photo', row 3.*mode 'F'.*\[0, 1\]"):
        decode_image(too_bright, "L", (6, 10), "photo", 3)


def _sideways():
    """A 4 x 8 RGB image stored a quarter turn from upright, and its upright view.

    EXIF orientation 6 says: turn the stored image 90 degrees clockwise to
    show it.
    """
    stored = np.zeros((4, 8, 3), dtype=np.uint8)
    stored[:, :2] = (255, 0, 0)
    stored[0, :, 1] = 255
    upright = np.rot90(stored, k=-1)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    return stored, np.ascontiguousarray(upright), exif


@pytest.mark.parametrize("source", ["path", "bytes", "pil"])
def test_exif_orientation_turns_the_image_upright(tmp_path, source):
    stored, upright, exif = _sideways()
    png = _encoded(Image.fromarray(stored), "PNG", exif=exif)
    path = tmp_path / "sideways.png"
    path.write_bytes(png)
    cell = {"path": path, "bytes": png, "pil": Image.open(BytesIO(png))}[source]

    decoded = decode_image(cell, "RGB", upright.shape[:2], "photo", 0)

    np.testing.assert_array_equal(decoded, upright)


def test_exif_orientation_of_a_jpeg_decoded_at_reduced_scale(tmp_path):
    stored, upright, exif = _sideways()
    big = Image.fromarray(stored).resize((256, 128), Image.Resampling.NEAREST)
    path = tmp_path / "sideways.jpg"
    big.save(path, "JPEG", quality=95, exif=exif)

    decoded = decode_image(path, "RGB", (8, 4), "photo", 0)

    assert decoded.shape == (8, 4, 3)
    assert np.abs(decoded.astype(int) - upright).max() < 48


def test_numeric_width_of_flattened_rgb_images_asks_for_input_shape():
    rgb_rows = np.random.RandomState(0).uniform(size=(5, 3 * 8 * 8))

    with pytest.raises(ValueError, match=r"192 columns.*input_shape=\(8, 8, 3\)"):
        CNNImageEncoder(**FAST).fit(rgb_rows)
    with pytest.raises(ValueError, match=r"input_shape=\(1, 12\)"):
        resolve_input_shape(12, None)

    encoder = CNNImageEncoder(input_shape=(8, 8, 3), **FAST).fit(rgb_rows)
    assert encoder.input_shape_ == (8, 8, 3)
    assert resolve_input_shape(12, (1, 12)) == (1, 12, 1)
    # A perfect square stays a square grey image, other widths grey strips.
    assert resolve_input_shape(64, None) == (8, 8, 1)
    assert resolve_input_shape(4 * 3 * 3, None) == (6, 6, 1)
    assert resolve_input_shape(72, None) == (1, 72, 1)
    # Three columns are not taken for a 1 x 1 colour image.
    assert resolve_input_shape(3, None) == (1, 3, 1)


def test_flattened_rgba_rows_ask_for_input_shape():
    rng = np.random.RandomState(0)
    rgba = rng.randint(0, 256, size=(5, 8, 8, 4)).astype(np.uint8)
    rgba[..., 3] = 255
    rows = rgba.reshape(5, -1)

    for block in (rows, rows / 255.0):
        with pytest.raises(
            ValueError, match=r"256 columns.*RGBA.*input_shape=\(8, 8, 4\)"
        ):
            CNNImageEncoder(**FAST).fit(block)
    encoder = CNNImageEncoder(input_shape=(8, 8, 4), **FAST).fit(rows)
    assert encoder.input_shape_ == (8, 8, 4)
    # 4 * 14**2 == 28**2: grey 28 x 28 images keep their square reading.
    grey = rng.uniform(size=(5, 28 * 28))
    assert CNNImageEncoder(**FAST).fit(grey).input_shape_ == (28, 28, 1)


def test_nan_pixel_in_an_image_array_names_the_cell_and_missing_images():
    rng = np.random.RandomState(0)
    images = [rng.uniform(size=(6, 6, 3)) for _ in range(3)]
    images[1][2, 3, 0] = np.nan
    X = _column([images[0], images[1], None, images[2]])

    with pytest.raises(ValueError) as raised:
        CNNImageEncoder(**FAST).fit(X)

    message = str(raised.value)
    assert "column 'photo', row 1" in message
    assert "holds 1 NaN" in message
    assert "None or NaN in the cell" in message
    assert "255" not in message
    images[1][2, 3, 0] = np.inf
    with pytest.raises(ValueError, match="row 1: the image array holds infinite"):
        CNNImageEncoder(**FAST).fit(X)
