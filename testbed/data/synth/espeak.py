"""espeak-ng through ctypes (the library and data ship with the pip package ``espeakng-loader``)."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence

import numpy as np

from testbed.data.synth.base import SynthRequest, Synthesizer

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 3, 4
_POS_CHARACTER = 1
_DEFAULT_WPM, _DEFAULT_PITCH = 175, 50

#: English accents x voice variants (``+variant``) that sound clearly different from each other.
ESPEAK_LANGS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                "en-029", "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "klatt",
                   "klatt2", "klatt4", "croak", "Andy", "Annie", "belinda", "david", "john", "linda",
                   "max", "steph")

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Lib:
    """The process-wide espeak-ng handle (espeak-ng keeps global state; one caller at a time)."""

    lock = threading.Lock()
    lib: ctypes.CDLL | None = None
    rate_hz = 0
    chunks: list[np.ndarray] = []
    callback = None  # keep a reference so ctypes does not free the trampoline

    @classmethod
    def get(cls) -> ctypes.CDLL:
        if cls.lib is None:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_Initialize.restype = ctypes.c_int
            lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetVoiceByName.restype = ctypes.c_int
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_SetParameter.restype = ctypes.c_int
            lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                         ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            lib.espeak_Synth.restype = ctypes.c_int
            lib.espeak_Synchronize.restype = ctypes.c_int
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed.restype = None
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                         espeakng_loader.get_data_path().encode(), 0)
            if rate <= 0:
                raise OSError("espeak_Initialize failed")

            def _on_audio(wav, n, _events) -> int:
                if n > 0 and wav:
                    cls.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
                return 0

            cls.callback = _CALLBACK(_on_audio)
            lib.espeak_SetSynthCallback(cls.callback)
            cls.rate_hz = rate
            cls.lib = lib
        return cls.lib


class EspeakSynthesizer(Synthesizer):
    """espeak-ng formant synthesis: many English accents and voice variants, very fast.

    Voices are named ``LANG+VARIANT`` (e.g. ``en-us+f3``); :data:`ESPEAK_LANGS` x
    :data:`ESPEAK_VARIANTS` are offered.
    """

    engine = "espeak"
    package = "espeakng-loader (pip)"

    def available(self) -> bool:
        try:
            _Lib.get()
        except (ImportError, OSError, RuntimeError):
            return False
        return True

    def voices(self) -> list[str]:
        return [f"{lang}+{v}" for lang in ESPEAK_LANGS for v in ESPEAK_VARIANTS]

    def _synth_native(self, requests: Sequence[SynthRequest]) -> list[tuple[np.ndarray, int] | None]:
        out: list[tuple[np.ndarray, int] | None] = []
        with _Lib.lock:
            lib = _Lib.get()
            for r in requests:
                if lib.espeak_SetVoiceByName(r.voice.encode()) != 0:
                    out.append(None)
                    continue
                lib.espeak_SetParameter(_ESPEAK_RATE, int(np.clip(_DEFAULT_WPM * r.rate, 80, 450)), 0)
                lib.espeak_SetParameter(_ESPEAK_PITCH, int(np.clip(_DEFAULT_PITCH * r.pitch, 0, 99)), 0)
                lib.espeak_SetParameter(_ESPEAK_RANGE, 50, 0)
                _Lib.chunks = []
                lib.espeak_ng_SetRandSeed(0)  # narrows, but does not remove, espeak-ng's run-to-run jitter
                text = r.text.encode() + b"\0"
                buf = ctypes.create_string_buffer(text)
                err = lib.espeak_Synth(buf, len(text), 0, _POS_CHARACTER, 0, 0, None, None)
                lib.espeak_Synchronize()
                if err != 0 or not _Lib.chunks:
                    out.append(None)
                    continue
                pcm = np.concatenate(_Lib.chunks).astype(np.float32) / 32768.0
                out.append((pcm, _Lib.rate_hz))
        return out
