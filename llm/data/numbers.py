"""English number words, for the generated translation task."""

from __future__ import annotations

_ONES = "zero one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else ""))
    elif n >= 10:
        words.append(_TEENS[n - 10])
    elif n > 0:
        words.append(_ONES[n])
    return words


def to_words(n: int) -> str:
    """0 <= n < 10**9 in English words: 'three hundred forty-two thousand five'."""
    if not 0 <= n < 10**9:
        raise ValueError(f"{n} is out of range [0, 10**9).")
    if n == 0:
        return "zero"
    words = []
    for scale, name in ((10**6, "million"), (10**3, "thousand"), (1, "")):
        part, n = divmod(n, scale)
        if part:
            words += _below_thousand(part) + ([name] if name else [])
    return " ".join(words)
