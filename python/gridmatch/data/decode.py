"""Safe decoding of one image file into a square uint8 array with PIL (private).

Used by :meth:`gridmatch.datasets.ImageCatalogue.load`; the file's header is checked
against a pixel limit before anything is decoded, and every failure is a
:class:`~gridmatch.exceptions.DataError` naming the file.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._base.exceptions import DataError

__all__ = ["read_square"]


def read_square(path: str, size: int, mode: str, max_pixels: int) -> np.ndarray:
    """One image as uint8 ``(size, size, 3)`` ("RGB") or ``(size, size)`` ("L").

    The central square (side = the shorter side) is resampled bilinearly to
    ``size × size``, as ``PIL.ImageOps.fit``, after the EXIF orientation is applied
    (phone photos stored sideways come out upright). Transparency is composited onto white;
    16-bit grayscale is scaled to 8 bits; 32-bit integer and float images are refused.

    Parameters
    ----------
    path : str
        The image file.
    size : int
        Output side in pixels.
    mode : {"RGB", "L"}
        Output colours.
    max_pixels : int
        Largest ``width × height`` the header may claim; checked before decoding.

    Returns
    -------
    ndarray of uint8

    Raises
    ------
    DataError
        Missing, unreadable, truncated, too large or unsupported; names the file.
    """
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: refused, too many pixels ({e})") from None
    except FileNotFoundError:
        raise DataError(f"{path}: image file no longer exists") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise DataError(
                f"{path}: header says {w}×{h} = {w * h} pixels, over max_pixels={max_pixels}; "
                "not decoded (decompression-bomb guard)"
            )
        if w < 1 or h < 1:
            raise DataError(f"{path}: empty image ({w}×{h})")
        try:
            im.load()
            # Upright as viewers show it: EXIF orientations 2-8 flip / rotate the pixels.
            upright = ImageOps.exif_transpose(im) or im
            w, h = upright.size
            rgb = _convert(upright, mode, path)
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR, box=box))
        except DataError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
            raise DataError(f"cannot decode image {path}: {e}") from None


def _convert(im, mode: str, path: str):
    from PIL import Image

    if im.mode.startswith("I;16"):
        a = np.asarray(im).astype(np.uint32)
        im = Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8))
    elif im.mode in ("I", "F"):
        raise DataError(f"{path}: unsupported image mode {im.mode!r} (32-bit); save it as 8-bit")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), rgba)
    return im.convert(mode)
