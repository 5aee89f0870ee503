"""Writes the alarm sounds to static/audio (committed; run again only to change them).

Patterns after IEC 60601-1-8: high priority is a burst of ten pulses (3 + 2, a pause, 3 + 2) repeated
every few seconds; medium priority is three slower pulses, repeated less often. Pulses are a fundamental
with four harmonics so they can be located and heard over room noise.
"""

import math
import struct
import wave
from pathlib import Path

RATE = 11025
AUDIO_DIR = Path(__file__).resolve().parent.parent / "static" / "audio"


def pulse(frequency: float, seconds: float) -> list[float]:
    """One pulse with a short attack and release (no clicks)."""
    count = int(RATE * seconds)
    ramp = int(RATE * 0.02)
    samples = []
    for index in range(count):
        envelope = min(1.0, index / ramp, (count - index) / ramp)
        tone = sum(math.sin(2 * math.pi * frequency * h * index / RATE) / h for h in range(1, 6))
        samples.append(0.35 * envelope * tone)
    return samples


def silence(seconds: float) -> list[float]:
    return [0.0] * int(RATE * seconds)


def burst(frequency: float, pulses: int, length: float, gap: float) -> list[float]:
    samples: list[float] = []
    for _ in range(pulses):
        samples += pulse(frequency, length) + silence(gap)
    return samples


def write(name: str, samples: list[float]) -> None:
    AUDIO_DIR.mkdir(parents=True, exist_ok=True)
    with wave.open(str(AUDIO_DIR / name), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b"".join(struct.pack("<h", int(max(-1.0, min(1.0, s)) * 32767)) for s in samples))


def main() -> None:
    half = burst(880, 3, 0.15, 0.1) + silence(0.2) + burst(880, 2, 0.15, 0.1)
    write("alarm-high.wav", half + silence(0.35) + half + silence(2.5))
    write("alarm-medium.wav", burst(660, 3, 0.25, 0.15) + silence(4.0))


if __name__ == "__main__":
    main()
