"""Side-by-side timing for the benchmarks: interleaved rounds, medians with their spread, ratios to a baseline.

The machine is shared, so a figure on its own means little: every case is measured in the same
rounds as its baseline, the order rotating each round, and the ratio is taken round by round (a busy
moment slows both sides of that round alike). Printed: the median time per call of each case with the
min-max of its rounds, and the median speed ratio ``baseline time / case time`` with its min-max
(above 1.00x: faster than the baseline).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Result", "calibrate", "compare", "print_table", "results_of"]


@dataclass(frozen=True)
class Result:
    """The rounds of one case: microseconds per call, and the speed ratio to the baseline in each round."""

    name: str
    us: list[float]
    ratios: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.us)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def calibrate(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds`` (after one warm-up call)."""
    fn()
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4 or n >= 1 << 24:
            return max(1, int(n * seconds / max(elapsed, 1e-9)))
        n *= 2


def _round(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def compare(
    cases: Mapping[str, Callable[[], object]], *, baseline: str, rounds: int = 7, seconds: float = 0.2
) -> list[Result]:
    """Time every case in ``rounds`` interleaved rounds of about ``seconds`` each; ratios against ``baseline``.

    Each case runs the same number of calls in every round (calibrated once, before the first round).
    """
    if rounds < 5:
        raise ValueError("at least 5 rounds: a median of fewer says little on a shared machine")
    names = list(cases)
    calls = {name: calibrate(cases[name], seconds) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name].append(_round(cases[name], calls[name]))
    base = samples[baseline]
    return [Result(name, samples[name], [b / s for b, s in zip(base, samples[name], strict=True)]) for name in names]


def results_of(samples: Mapping[str, list[float]], *, baseline: str) -> list[Result]:
    """Results from rounds timed elsewhere (one time per round and case, the cases interleaved), ratios per round."""
    base = samples[baseline]
    return [
        Result(name, list(times), [b / t for b, t in zip(base, times, strict=True)]) for name, times in samples.items()
    ]


def print_table(
    title: str,
    results: list[Result],
    *,
    baseline: str,
    unit: str = "µs/call",
    also: str | None = None,
    scale: float = 1.0,
) -> None:
    """Print one block: median and spread of each case, and its speed ratio to ``baseline`` (same rounds).

    ``also`` names a second baseline among the cases: each case's ratio to it, round by round, is added.
    ``scale`` multiplies the times shown (``1e-3`` with ``unit="ms"`` for results in µs).
    """
    second = next((r.us for r in results if r.name == also), None)
    rounds = len(results[0].us)
    print(f"== {title} ({rounds} interleaved rounds; median [min-max])")
    width = max(len(r.name) for r in results) + 2
    for r in results:
        figure = f"{r.median * scale:10.2f} {unit} [{min(r.us) * scale:.2f}-{max(r.us) * scale:.2f}]"
        if r.name == baseline:
            print(f"  {r.name:<{width}}{figure}   baseline")
        else:
            line = (
                f"  {r.name:<{width}}{figure}   speed {r.ratio:.2f}x baseline [{min(r.ratios):.2f}-{max(r.ratios):.2f}]"
            )
            if second is not None and r.name != also:
                ratios = [b / s for b, s in zip(second, r.us, strict=True)]
                line += f"  {statistics.median(ratios):.2f}x {also} [{min(ratios):.2f}-{max(ratios):.2f}]"
            print(line)
