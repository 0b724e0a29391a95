"""An experiment's variants compared with a stated test: the two-proportion z-test.

For a conversion-style metric (successes out of trials per variant), the test statistic is
z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b)) with the pooled p = (x_a + x_b) / (n_a + n_b),
and the p-value is two-sided. The difference's confidence interval uses the unpooled standard
error sqrt(p_a (1 - p_a) / n_a + p_b (1 - p_b) / n_b) (Wald).

Production reports per-variant counts (`requests`, `errors`, `conversions`); `arms` reads
them as the test's trials and successes: trials are requests, and the successes are the
event the metric counts — errors for `error_ratio` (its rate is the error ratio; lower is
better), conversions for `conversion` (higher is better). "Success" is the test's word for
the counted event, not a judgement.

The verdict is **clear** when both variants have at least `min_sample` trials and either the
difference is significant (p < alpha: the better variant is named) or the interval lies
inside ±`min_effect` (no difference that matters). Anything else — too few trials, or an
interval that still reaches an effect that matters — is **ambiguous**: the numbers go to the
outcome owner to decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy.stats import norm

Better = Literal["higher", "lower"]
Metric = Literal["error_ratio", "conversion"]
COUNTED: dict[str, str] = {"error_ratio": "errors", "conversion": "conversions"}


@dataclass(frozen=True)
class Arm:
    variant: str
    successes: int
    trials: int

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else math.nan


@dataclass(frozen=True)
class Comparison:
    control: Arm
    treatment: Arm
    difference: float  # treatment rate - control rate
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    verdict: Literal["clear", "ambiguous"]
    winner: str | None  # the better variant when the difference is significant
    reason: str


def compare(control: Arm, treatment: Arm, *, alpha: float = 0.05, min_sample: int = 1000,
            min_effect: float = 0.01, better: Better = "higher") -> Comparison:
    """The two-proportion z-test of `treatment` against `control` (see the module docstring)."""
    n_a, n_b = control.trials, treatment.trials
    diff = treatment.rate - control.rate
    if min(n_a, n_b) < min_sample or n_a <= 0 or n_b <= 0:
        return Comparison(control, treatment, diff, math.nan, math.nan, math.nan, math.nan,
                          "ambiguous", None,
                          f"too few trials to decide: {n_a} and {n_b}, the test needs "
                          f"{min_sample} per variant")
    pooled = (control.successes + treatment.successes) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = diff / se if se > 0 else 0.0
    p_value = float(2 * norm.sf(abs(z)))
    half = float(norm.ppf(1 - alpha / 2)) * math.sqrt(
        control.rate * (1 - control.rate) / n_a + treatment.rate * (1 - treatment.rate) / n_b)
    low, high = diff - half, diff + half
    numbers = (f"{control.variant} {control.rate:.2%} of {n_a}, {treatment.variant} "
               f"{treatment.rate:.2%} of {n_b}: difference {diff:+.2%} "
               f"({1 - alpha:.0%} CI {low:+.2%} to {high:+.2%}), z {z:.2f}, p {p_value:.4f}")
    if p_value < alpha:
        up = diff > 0
        winner = treatment.variant if up == (better == "higher") else control.variant
        return Comparison(control, treatment, diff, z, p_value, low, high, "clear", winner,
                          f"{winner} is better: {numbers}")
    if -min_effect < low and high < min_effect:
        return Comparison(control, treatment, diff, z, p_value, low, high, "clear", None,
                          f"no difference of {min_effect:.2%} or more: {numbers}")
    return Comparison(control, treatment, diff, z, p_value, low, high, "ambiguous", None,
                      f"not significant, but a difference of {min_effect:.2%} is not ruled "
                      f"out: {numbers}")


def arms(counts: dict[str, dict[str, int]], metric: Metric, control: str, treatment: str
         ) -> tuple[Arm, Arm]:
    """The control's and the treatment's arms from production's per-variant counts (see the
    module docstring); ValueError naming the variant and the count when they do not fit."""
    counted = COUNTED[metric]

    def arm(variant: str) -> Arm:
        found = counts.get(variant)
        if found is None:
            seen = ", ".join(sorted(counts)) or "none"
            raise ValueError(f"no counts for variant {variant!r} (variants counted: {seen})")
        trials, events = found.get("requests"), found.get(counted)
        for name, value in (("requests", trials), (counted, events)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"variant {variant!r}: {name} is {value!r}, not a count")
        assert isinstance(trials, int) and isinstance(events, int)
        if events > trials:
            raise ValueError(f"variant {variant!r}: {events} {counted} out of {trials} "
                             "requests")
        return Arm(variant, events, trials)

    return arm(control), arm(treatment)
