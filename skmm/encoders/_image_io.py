"""Image decoding: from the cells of a column block to fixed-size pixel arrays.

The functions here use Pillow and NumPy only, no torch: they run in joblib
worker processes, which leave torch's threads to the network in the main
process.

Two kinds of block are read:

- *image cells*: an object block whose cells are file paths, encoded bytes,
  PIL images or arrays. :func:`decode_cells` decodes, turns upright (EXIF
  orientation), converts and resizes each cell with Pillow into a ``uint8``
  batch.
- *flattened images*: a numeric block with one image per row.
  :func:`flat_rows_to_images` reshapes and resizes it into a ``float32``
  batch in the units of the input.
"""

import math
import os
import warnings
from io import BytesIO
from numbers import Integral, Real

import numpy as np
from PIL import ExifTags, Image, ImageOps

from skmm.utils._validation import is_missing, relative_path_hint

__all__ = [
    "IMAGE_MODES",
    "block_holds_numbers",
    "decode_cells",
    "decode_image",
    "flat_rows_to_images",
    "is_image_cell",
    "is_number_cell",
    "iter_image_chunks",
    "mode_of",
    "resolve_input_shape",
]

IMAGE_MODES = {"L": 1, "RGB": 3}


def mode_of(n_channels):
    """The Pillow mode of images with ``n_channels`` channels."""
    return next(mode for mode, n in IMAGE_MODES.items() if n == n_channels)


# Pillow's conversion from RGB to L (ITU-R 601-2 luma), reused for numeric
# blocks so that both kinds of input turn colour into grey the same way.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def is_image_cell(value):
    """True for a cell that holds an image: a path, bytes, a PIL image, an array."""
    return isinstance(value, (str, os.PathLike, bytes, Image.Image, np.ndarray))


def is_number_cell(value):
    """True for a real number that is not missing (bools included)."""
    return isinstance(value, (Real, np.bool_)) and not is_missing(value)


def block_holds_numbers(X):
    """Whether the 2-D block ``X`` is to be read as flattened images.

    A numeric array is. An object array is when none of its cells is an image
    and at least one is a number, as for a numeric array cast to object.
    """
    if X.dtype.kind in "biuf":
        return True
    has_number = False
    for value in X.flat:
        if is_image_cell(value):
            return False
        has_number = has_number or is_number_cell(value)
    return has_number


def resolve_input_shape(n_features, input_shape, X=None):
    """Return the ``(H, W, C)`` of the images flattened in rows of ``n_features``.

    With ``input_shape=None``, a perfect square is a square grayscale image
    and any other width a ``1 x n_features`` grayscale strip, except a width
    of ``3 * k**2`` with ``k > 1``: that is the width of flattened ``k x k``
    RGB images, which a strip would silently misread, so it raises a
    ValueError that asks for ``input_shape``.

    A width of ``4 * k**2`` (flattened ``k x k`` RGBA images) is also the
    square ``(2k)**2``, the width of ``2k x 2k`` grey images such as 28 x 28
    digits, so the width alone cannot tell them apart. Given the rows ``X``,
    a block whose every fourth value (the alpha channel, channels last) is
    the same opaque maximum in every row, while the other values vary, is
    read as RGBA rows and raises a ValueError that asks for ``input_shape``.
    """
    if input_shape is None:
        side = math.isqrt(n_features)
        if side * side == n_features:
            if side % 2 == 0 and side > 2 and _has_opaque_alpha(X):
                half = side // 2
                raise ValueError(
                    f"The numeric block has {n_features} columns, 4 x {half}x"
                    f"{half}, and every fourth column holds the same maximum "
                    f"in every row: the layout of flattened {half}x{half} RGBA "
                    "images (an opaque alpha channel last), which without "
                    f"input_shape would be read as {side}x{side} grey images. "
                    f"Pass input_shape=({half}, {half}, 4) if each row is an "
                    f"RGBA image, or input_shape=({side}, {side}) if it is a "
                    "grey image."
                )
            return (side, side, 1)
        colour_side = math.isqrt(n_features // 3)
        if colour_side > 1 and 3 * colour_side * colour_side == n_features:
            raise ValueError(
                f"The numeric block has {n_features} columns, 3 x "
                f"{colour_side}x{colour_side}: the width of flattened "
                f"{colour_side}x{colour_side} RGB images, which without "
                "input_shape would be read as 1 x "
                f"{n_features} grey strips. Pass input_shape=({colour_side}, "
                f"{colour_side}, 3) if each row is an RGB image (channels "
                f"last), or input_shape=(1, {n_features}) if it is a grey strip."
            )
        return (1, n_features, 1)
    shape = tuple(input_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if (
        len(shape) != 3
        or not all(isinstance(d, Integral) and d > 0 for d in shape)
        or shape[2] not in (1, 3, 4)
    ):
        raise ValueError(
            "input_shape must be (H, W) or (H, W, C) with positive integers and "
            f"C in (1, 3, 4), got {input_shape!r}."
        )
    if math.prod(shape) != n_features:
        raise ValueError(
            f"input_shape={input_shape!r} holds {math.prod(shape)} values, but the "
            f"numeric block has {n_features} columns; each row must be one "
            "flattened image."
        )
    return tuple(int(d) for d in shape)


def _has_opaque_alpha(X):
    """Whether every fourth value of each row of ``X`` is the block's maximum."""
    if X is None:
        return False
    try:
        values = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        # Cells that are not numbers get their own error when decoded.
        return False
    values = values[np.isfinite(values).all(axis=1)]
    if values.size == 0:
        return False
    alpha, colour = values[:, 3::4], np.delete(values, np.s_[3::4], axis=1)
    top = values.max()
    return bool(top > 0 and (alpha == top).all() and np.ptp(colour) > 0)


def _cell_name(column, row):
    return f"column {column!r}, row {row}"


def _array_to_pil(arr, column, row):
    where = _cell_name(column, row)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(
            f"{where}: an image array must have shape (H, W), (H, W, 1), "
            f"(H, W, 3) or (H, W, 4), got {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"{where}: the image array is empty, shape {arr.shape}.")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            n_nan = int(np.isnan(arr).sum())
            found = f"{n_nan} NaN" if n_nan else "infinite values"
            raise ValueError(
                f"{where}: the image array holds {found} among its "
                f"{arr.size} values; every pixel of an image must be a finite "
                "number. A missing image is a missing cell: put None or NaN in "
                "the cell in place of the array."
            )
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(
                f"{where}: a float image array must hold finite values in [0, 1], "
                f"found values in [{np.nanmin(arr)}, {np.nanmax(arr)}]. Divide "
                "0-255 intensities by 255."
            )
        arr = np.rint(arr * 255)
    elif arr.dtype.kind in "iu":
        if arr.dtype != np.uint8 and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(
                f"{where}: an integer image array must hold values in [0, 255], "
                f"found values in [{arr.min()}, {arr.max()}]."
            )
    else:
        raise TypeError(
            f"{where}: an image array must be uint8 (0-255) or float (0-1), got "
            f"dtype {arr.dtype}."
        )
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))


def _orientation(image):
    """The EXIF orientation of ``image``, 1 (upright) when it has none."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return orientation if orientation in range(1, 9) else 1


def _upright(image):
    """``image`` turned as its EXIF orientation says; itself when upright."""
    if _orientation(image) == 1:
        return image
    return ImageOps.exif_transpose(image)


def _to_8bit(image):
    """``image`` with its integer or float pixels scaled to the 8-bit range.

    Pillow's ``convert`` clips the pixels of a 16-bit image (modes ``I;16*``,
    and ``I`` as older Pillow opens 16-bit PNGs) at 255 instead of scaling
    them, which turns almost every pixel white. 16-bit pixels are divided by
    257 (65535 to 255). A mode ``I`` image whose pixels all lie in [0, 255]
    already holds 8-bit values and keeps them; otherwise it is read as 16-bit.

    A 32-bit float image (mode ``F``) is read as float image arrays are: values
    in [0, 1] are intensities scaled by 255 (``convert`` would round them to 0
    or 1, a black image); values in [0, 255] are 8-bit intensities. Other
    values raise a ValueError.
    """
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        if not np.isfinite(pixels).all():
            raise ValueError(
                "the 32-bit float image (mode 'F') holds NaN or infinite pixels"
            )
        low, high = pixels.min(), pixels.max()
        if low < 0 or high > 255:
            raise ValueError(
                "the 32-bit float image (mode 'F') holds values in "
                f"[{low:g}, {high:g}]; scale them to [0, 1] (or to 0-255)"
            )
        if high <= 1:
            pixels = pixels * 255
        return Image.fromarray(np.rint(pixels).astype(np.uint8))
    if not (image.mode == "I" or image.mode.startswith("I;16")):
        return image
    pixels = np.asarray(image).astype(np.int64)
    if image.mode.startswith("I;16") or pixels.min() < 0 or pixels.max() > 255:
        pixels = np.rint(np.clip(pixels, 0, 65535) / 257)
    return Image.fromarray(pixels.astype(np.uint8))


def _open_file(source, mode, size, column, row):
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    try:
        with Image.open(BytesIO(source) if isinstance(source, bytes) else source) as im:
            # JPEG only: decode at a reduced scale that still covers ``size``
            # (its sides swapped when the EXIF orientation turns the image a
            # quarter), several times faster for photos larger than the target.
            quarter_turn = _orientation(im) in (5, 6, 7, 8)
            im.draft(mode, (size[0], size[1]) if quarter_turn else (size[1], size[0]))
            return _to_8bit(_upright(im)).convert(mode)
    # Pillow's format plugins signal truncated or corrupt data with OSError,
    # ValueError, SyntaxError, struct errors or DecompressionBombError alike.
    except FileNotFoundError as exc:
        raise ValueError(
            f"The image file {name!r} ({_cell_name(column, row)}) does not "
            f"exist.{relative_path_hint(name)}"
        ) from exc
    except Exception as exc:
        raise ValueError(
            f"Cannot read the image file {name!r} ({_cell_name(column, row)}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def decode_image(value, mode, size, column, row):
    """Return the image in cell ``value`` as a ``(H, W, C)`` uint8 array.

    Parameters
    ----------
    value : str, path-like, bytes, PIL.Image.Image or ndarray
        A file path, the bytes of an encoded file, a PIL image, or an array
        of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), uint8 or float in
        [0, 1]. Files and PIL images are turned upright as their EXIF
        orientation says, and 16-bit pixels scaled to 8 bits.
    mode : {"RGB", "L"}
        Pillow mode the image is converted to; an alpha channel is dropped.
    size : tuple of int
        ``(H, W)`` after a bilinear resize.
    column : str
        Column name, for error messages.
    row : int
        Row position, for error messages.

    Returns
    -------
    image : ndarray of shape (H, W, C), dtype uint8
    """
    if isinstance(value, (str, os.PathLike, bytes)):
        image = _open_file(value, mode, size, column, row)
    else:
        if isinstance(value, np.ndarray):
            image = _array_to_pil(value, column, row)
        elif isinstance(value, Image.Image):
            image = value
        else:
            raise TypeError(
                f"{_cell_name(column, row)}: expected an image (a file path, "
                "encoded bytes, a PIL image or an array), got "
                f"{type(value).__name__} {value!r:.50}."
            )
        try:
            image = _to_8bit(_upright(image)).convert(mode)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"{_cell_name(column, row)}: cannot convert the image of mode "
                f"{image.mode!r} to {mode!r}: {exc}"
            ) from exc
    if image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    pixels = np.asarray(image)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _row_positions(first_row, n_rows):
    """Position of each row: ``first_row`` onwards, or ``first_row`` itself."""
    if isinstance(first_row, Integral):
        return range(first_row, first_row + n_rows)
    return [int(p) for p in first_row]


def decode_cells(cells, columns, first_row, mode, size):
    """Decode a block of image cells into one uint8 batch.

    Parameters
    ----------
    cells : ndarray of shape (n_rows, n_columns), dtype object
        Image cells; missing cells are ``None``, ``NaN`` or ``pd.NA``.
    columns : list of str
        Column names, for error messages.
    first_row : int or array-like of int
        Position of the first row of ``cells`` in the whole block, or the
        position of each row (rows drawn in any order, as in a shuffled
        batch).
    mode : {"RGB", "L"}
        Pillow mode the images are converted to.
    size : tuple of int
        ``(H, W)`` of the output images.

    Returns
    -------
    images : ndarray of shape (n_rows, n_columns, C, H, W), dtype uint8
        Zeros where the cell is missing.
    missing : ndarray of shape (n_rows, n_columns), dtype bool
    """
    n_rows, n_columns = cells.shape
    positions = _row_positions(first_row, n_rows)
    images = np.zeros((n_rows, n_columns, IMAGE_MODES[mode], *size), dtype=np.uint8)
    missing = np.zeros((n_rows, n_columns), dtype=bool)
    for i in range(n_rows):
        for j in range(n_columns):
            value = cells[i, j]
            if is_missing(value):
                missing[i, j] = True
                continue
            images[i, j] = decode_image(
                value, mode, size, columns[j], positions[i]
            ).transpose(2, 0, 1)
    return images, missing


def _resize_plane(plane, size):
    return np.asarray(
        Image.fromarray(plane).resize((size[1], size[0]), Image.Resampling.BILINEAR),
        dtype=np.float32,
    )


def _resize_with_gaps(plane, size):
    """Resize a float plane whose NaN pixels are missing.

    Each output pixel is the weighted mean of its valid input pixels only,
    NaN where none is valid.
    """
    valid = ~np.isnan(plane)
    if valid.all():
        return _resize_plane(plane, size)
    weight = _resize_plane(valid.astype(np.float32), size)
    total = _resize_plane(np.where(valid, plane, 0).astype(np.float32), size)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(weight > 1e-6, total / weight, np.nan).astype(np.float32)


def flat_rows_to_images(X, columns, first_row, input_shape, mode, size):
    """Read each row of a numeric block as one flattened image.

    Parameters
    ----------
    X : ndarray of shape (n_rows, H_in * W_in * C_in)
        Pixel values in any units; NaN marks a missing pixel.
    columns : list of str
        Column names, for error messages.
    first_row : int or array-like of int
        Position of the first row of ``X`` in the whole block, or the
        position of each row.
    input_shape : tuple of int
        ``(H_in, W_in, C_in)`` of each row, C_in in (1, 3, 4), channels last.
    mode : {"RGB", "L"}
        Output channels: grey is repeated to RGB, RGB turned into luma for L,
        and an alpha channel dropped.
    size : tuple of int
        ``(H, W)`` after a bilinear resize.

    Returns
    -------
    images : ndarray of shape (n_rows, 1, C, H, W), dtype float32
        NaN where no valid input pixel contributes.
    """
    positions = _row_positions(first_row, X.shape[0])
    if X.dtype == object:
        values = np.empty(X.shape, dtype=np.float32)
        for (i, j), value in np.ndenumerate(X):
            if is_missing(value):
                values[i, j] = np.nan
            elif is_number_cell(value):
                values[i, j] = value
            else:
                raise TypeError(
                    f"{_cell_name(columns[j], positions[i])}: expected a number "
                    "(the block is read as flattened images) or an image, got "
                    f"{type(value).__name__} {value!r:.50}."
                )
        X = values
    else:
        X = X.astype(np.float32, copy=False)
    infinite = np.argwhere(np.isinf(X))
    if len(infinite):
        i, j = infinite[0]
        raise ValueError(
            f"{_cell_name(columns[j], positions[i])}: pixel values must be finite "
            "(NaN marks a missing pixel), got infinity."
        )
    n_rows = X.shape[0]
    height, width, depth = input_shape
    images = X.reshape(n_rows, height, width, depth)[..., :3]
    if mode == "L" and images.shape[3] == 3:
        images = (images @ _LUMA)[..., None]
    out = np.empty(
        (n_rows, 1, images.shape[3], *size),
        dtype=np.float32,
    )
    for i in range(n_rows):
        for c in range(images.shape[3]):
            plane = np.ascontiguousarray(images[i, :, :, c])
            out[i, 0, c] = (
                plane
                if (height, width) == tuple(size)
                else _resize_with_gaps(plane, size)
            )
    if out.shape[2] < IMAGE_MODES[mode]:
        out = np.repeat(out, IMAGE_MODES[mode], axis=2)
    return out


def iter_image_chunks(X, columns, chunk_rows, *, input_shape, mode, size, n_jobs):
    """Yield ``(rows, images, missing)`` for consecutive chunks of a block.

    ``images`` has shape ``(n_rows, n_images_per_row, C, H, W)``: uint8
    decoded from image cells, with a boolean ``missing`` mask, or float32 read
    from a numeric block (``input_shape`` set), with NaN pixels and
    ``missing=None``. With ``n_jobs`` > 1 the image cells are decoded in
    worker processes while the caller consumes earlier chunks.
    """
    from joblib import Parallel, delayed, effective_n_jobs

    n_rows = X.shape[0]
    slices = [
        slice(i, min(i + chunk_rows, n_rows)) for i in range(0, n_rows, chunk_rows)
    ]
    if input_shape is not None:
        results = (
            (flat_rows_to_images(X[s], columns, s.start, input_shape, mode, size), None)
            for s in slices
        )
    elif effective_n_jobs(n_jobs) == 1:
        results = (decode_cells(X[s], columns, s.start, mode, size) for s in slices)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_decode_or_error)(X[s], columns, s.start, mode, size)
            for s in slices
        )
    for s, result in zip(slices, results):
        if isinstance(result, Exception):
            with warnings.catch_warnings():
                # joblib warns about the chunks decoded for nothing.
                warnings.simplefilter("ignore", UserWarning)
                results.close()
            raise result
        images, missing = result
        yield s, images, missing


def _decode_or_error(*args):
    """``decode_cells`` in a worker, returning its error rather than raising.

    joblib raises a worker's error as soon as it arrives, which can be
    before the earlier chunks are done: returned, the errors are raised in
    chunk order, so the first bad cell is reported as without workers.
    """
    try:
        return decode_cells(*args)
    except ValueError as exc:
        return exc
