"""Decode one image file (PNG, JPEG, TIFF, BMP, DICOM) into a uint8 array of the configured size.

Medical images are often 12- or 16-bit. They are scaled by their own range (min..max -> 0..255),
never clamped at 255 (which is what Pillow's `convert("L")` does, washing them out). DICOM goes
through the modality LUT, then the VOI LUT (window), and MONOCHROME1 is inverted so that higher
values are brighter, as on a MONOCHROME2 display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.transforms import luma, resample_method

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
SUFFIXES = IMAGE_SUFFIXES | DICOM_SUFFIXES


class BadImage(Exception):
    """A file that cannot be decoded into an image (unreadable, truncated, empty, unsupported)."""


def decode_file(path: str | Path, *, size: int, channels: int) -> np.ndarray:
    """(size, size, channels) uint8. Raises BadImage with a short reason."""
    return fit_image(read_pixels(path), size=size, channels=channels)


def read_pixels(path: str | Path) -> np.ndarray:
    """The file's pixels at their native size and depth, (H, W) or (H, W, C). Raises BadImage."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImage("zero-byte file")
        if path.suffix.lower() in DICOM_SUFFIXES:
            return _read_dicom(path)
        return _read_pillow(path)
    except BadImage:
        raise
    except Exception as e:  # noqa: BLE001 - every decoder failure is the same user problem
        raise BadImage(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}"
                       ) from None


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Scale any-depth pixels to uint8 by their real range (8-bit images pass through unchanged)."""
    if pixels.dtype == np.uint8:
        return pixels
    a = pixels.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        raise BadImage("no finite pixel values")
    lo, hi = a[finite].min(), a[finite].max()
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    a = np.where(finite, a, lo)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def fit_image(pixels: np.ndarray, *, size: int, channels: int) -> np.ndarray:
    """(H, W) or (H, W, C) of any dtype -> (size, size, channels) uint8."""
    if pixels.ndim == 3 and pixels.shape[2] == 4:  # RGBA / LA: drop alpha
        pixels = pixels[:, :, :3]
    if pixels.ndim == 3 and pixels.shape[2] == 2:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim not in (2, 3) or min(pixels.shape[:2]) < 1:
        raise BadImage(f"unsupported pixel array shape {pixels.shape}")
    pixels = to_uint8(pixels)
    if pixels.ndim == 3 and channels == 1:
        pixels = luma(pixels)
    img = Image.fromarray(pixels)
    if img.size != (size, size):
        img = img.resize((size, size), resample_method(size, *img.size))
    out = np.asarray(img)
    if out.ndim == 2:
        out = out[:, :, None]
    if channels == 3 and out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return out


def _read_pillow(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()  # decode everything now: truncated files fail here, not later
        if img.mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        elif img.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
            img = img.convert("RGB" if img.mode != "1" else "L")
        pixels = np.array(img)
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        pixels = pixels.astype(np.float64 if img.mode == "F" else np.int64)
    return pixels


def _read_dicom(path: Path) -> np.ndarray:
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        try:
            import pydicom
            from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
        except ImportError:
            raise BadImage("pydicom is not installed: pip install pydicom") from None
    ds = pydicom.dcmread(path)
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        raise BadImage(f"multi-frame DICOM ({ds.NumberOfFrames} frames) is not supported")
    pixels = ds.pixel_array
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric.startswith("MONOCHROME"):
        pixels = apply_modality_lut(pixels, ds)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            pixels = apply_voi_lut(pixels, ds)
        pixels = np.asarray(pixels, dtype=np.float64)
        if photometric == "MONOCHROME1":  # low values are bright in MONOCHROME1
            pixels = pixels.max() - pixels
    return np.asarray(pixels)
