"""The action report's statistics: how an action's treated customers did against its holdout.

Pure arithmetic on counts someone else has summed (customers, conversions, value per arm); no
I/O. `uplift_report` is the entry; `sample_ratio_check` is also usable on its own.

Which intervals, and why:

- **Fixed-horizon** (`absolute_fixed`): Agresti–Caffo, a Wald interval on the difference after
  adding one conversion and one non-conversion to each arm (Agresti & Caffo 2000). At the counts
  an action report sees early (a 10 % holdout of a few hundred customers, a handful of
  conversions) plain Wald collapses to zero width when an arm has 0 or all conversions and
  undercovers (the tests: at 500 customers it covers 90 of 100 true uplifts, Agresti–Caffo 99);
  once counts are large the two agree. Newcombe's hybrid score interval behaves about as well at
  small counts, but it is not of the form centre ± z · se, and Agresti–Caffo is: the sequential
  interval below uses the very same centre and standard error with a larger multiplier, so it
  always contains the fixed one and the two are read the same way.
- **Sequential** (`absolute_sequential`, the verdict's by default): the normal-mixture confidence
  sequence in its asymptotic form (Robbins' mixture; Howard et al. 2021; Waudby-Smith et al.,
  arXiv:2103.06476), the one GrowthBook's sequential testing uses. Under no difference the mixture
  likelihood ratio is a nonnegative martingale starting at 1, so by Ville's inequality it ever
  reaches 1/alpha with probability at most alpha: the report may be read as often as anyone likes
  and acted on at the first significant read. The guarantee needs the normal approximation to
  hold from the first read on (the tests read every 1,000 customers with a 10 % holdout). The
  price is width: about 1.55 times the fixed interval at its tightest.
- **Relative** (`relative_fixed`, `relative_sequential`): the delta method on treated/control,
  with the same two multipliers; none while control has no conversion.

The sample-ratio check is a chi-square goodness of fit (1 degree of freedom) of the control
share against the configured holdout, flagged below p = 0.001: strict, because it is read at
every refresh and a false alarm sends someone hunting for a bug that is not there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final, Literal

IntervalKind = Literal["sequential", "fixed"]

BETTER: Final = "better than control"
WORSE: Final = "worse than control"
NO_EVIDENCE: Final = "no evidence yet"
# A sample-ratio mismatch is flagged below this p-value.
SAMPLE_RATIO_P_VALUE: Final = 0.001
# The power the "needs about N more customers" estimate plans for.
PLANNED_POWER: Final = 0.8

_NORMAL: Final = NormalDist()


@dataclass(frozen=True, slots=True)
class Arm:
    """What one arm of an action saw for one goal.

    `customers` exposed, `conversions` among them (each converted customer counted once), and
    `value` the goal's summed value over those customers (None when the goal has no value).
    """

    customers: int
    conversions: int
    value: float | None = None

    @property
    def rate(self) -> float | None:
        """Conversions per customer; None while the arm has no customer."""
        return self.conversions / self.customers if self.customers else None


@dataclass(frozen=True, slots=True)
class Interval:
    """A closed interval [low, high]."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0


@dataclass(frozen=True, slots=True)
class SampleRatioCheck:
    """Did customers land in control at the configured holdout rate?

    Shares are fractions (0.1 is 10 %); `mismatch` is `p_value < SAMPLE_RATIO_P_VALUE`.
    """

    control_share: float
    configured_share: float
    p_value: float
    mismatch: bool
    message: str


@dataclass(frozen=True, slots=True)
class UpliftReport:
    """One action's uplift on one goal. Rates and uplifts are fractions (0.07 is 7 %).

    `absolute_uplift` is treated rate minus control rate; `relative_uplift` is their ratio minus
    one (None while control has no conversion). Point values are None while an arm has no
    customer. `incremental_conversions` is treated customers times the absolute uplift, and
    `incremental_value` the treated value minus what the treated customers would have brought at
    control's value per customer. `verdict` is read from the interval named by
    `verdict_interval`; while it is "no evidence yet", `customers_needed` is how many more
    customers (both arms, split as configured) would detect `planned_uplift` with 80 % power.
    """

    treated: Arm
    control: Arm
    holdout_percent: float
    confidence: float
    treated_rate: float | None
    control_rate: float | None
    absolute_uplift: float | None
    absolute_fixed: Interval
    absolute_sequential: Interval
    relative_uplift: float | None
    relative_fixed: Interval | None
    relative_sequential: Interval | None
    incremental_conversions: float | None
    incremental_value: float | None
    verdict_interval: IntervalKind
    verdict: str
    customers_needed: int | None
    planned_uplift: float | None
    sample_ratio: SampleRatioCheck

    @property
    def interval(self) -> Interval:
        """The absolute-uplift interval the verdict was read from."""
        if self.verdict_interval == "fixed":
            return self.absolute_fixed
        return self.absolute_sequential


def uplift_report(
    treated: Arm,
    control: Arm,
    holdout_percent: float,
    *,
    confidence: float = 0.95,
    verdict_interval: IntervalKind = "sequential",
    sequential_planned_customers: int = 5_000,
    minimum_detectable_uplift: float = 0.10,
) -> UpliftReport:
    """The uplift of `treated` over `control`, with intervals, a verdict and a sample-ratio check.

    `holdout_percent` is the configured control share in percent (10 for 10 %). The sequential
    interval is tightest around `sequential_planned_customers` customers (both arms); the choice
    changes its power, never its validity. `minimum_detectable_uplift` (relative: 0.10 is a 10 %
    lift on the control rate) is the smallest uplift the "needs about N more customers" estimate
    plans for when the observed one is smaller.
    """
    _check_inputs(treated, control, holdout_percent, confidence)
    if sequential_planned_customers <= 0 or minimum_detectable_uplift <= 0:
        raise ValueError(
            "sequential_planned_customers and minimum_detectable_uplift must be positive, got "
            f"{sequential_planned_customers} and {minimum_detectable_uplift}"
        )
    alpha = 1.0 - confidence
    z_fixed = _NORMAL.inv_cdf(1.0 - alpha / 2.0)
    z_sequential = _sequential_z(
        treated.customers + control.customers, alpha, sequential_planned_customers
    )
    absolute = _difference(treated.rate, control.rate)
    relative = _relative_uplift(treated, control)
    absolute_fixed = _absolute_interval(treated, control, absolute, z_fixed)
    absolute_sequential = _absolute_interval(treated, control, absolute, z_sequential)
    chosen = absolute_fixed if verdict_interval == "fixed" else absolute_sequential

    def critical(customers: int) -> float:
        if verdict_interval == "fixed":
            return z_fixed
        return _sequential_z(customers, alpha, sequential_planned_customers)

    customers = treated.customers + control.customers
    verdict, needed, planned = _verdict(
        chosen,
        absolute,
        control,
        customers,
        holdout_percent / 100.0,
        critical,
        minimum_detectable_uplift,
    )
    return UpliftReport(
        treated=treated,
        control=control,
        holdout_percent=holdout_percent,
        confidence=confidence,
        treated_rate=treated.rate,
        control_rate=control.rate,
        absolute_uplift=absolute,
        absolute_fixed=absolute_fixed,
        absolute_sequential=absolute_sequential,
        relative_uplift=relative,
        relative_fixed=_relative_interval(relative, treated, control, z_fixed),
        relative_sequential=_relative_interval(relative, treated, control, z_sequential),
        incremental_conversions=None if absolute is None else treated.customers * absolute,
        incremental_value=_incremental_value(treated, control),
        verdict_interval=verdict_interval,
        verdict=verdict,
        customers_needed=needed,
        planned_uplift=planned,
        sample_ratio=sample_ratio_check(treated.customers, control.customers, holdout_percent),
    )


def sample_ratio_check(
    treated_customers: int, control_customers: int, holdout_percent: float
) -> SampleRatioCheck:
    """Chi-square goodness of fit (1 degree of freedom) of the control share against the holdout.

    The p-value of a chi-square with one degree of freedom is erfc(sqrt(x / 2)). Flagged when it
    is below `SAMPLE_RATIO_P_VALUE` (0.001).
    """
    configured = holdout_percent / 100.0
    total = treated_customers + control_customers
    if total == 0:
        return SampleRatioCheck(0.0, configured, 1.0, False, "no customers yet")
    expected_control = total * configured
    expected_treated = total - expected_control
    statistic = (control_customers - expected_control) ** 2 / expected_control + (
        treated_customers - expected_treated
    ) ** 2 / expected_treated
    p_value = math.erfc(math.sqrt(statistic / 2.0))
    share = control_customers / total
    mismatch = p_value < SAMPLE_RATIO_P_VALUE
    message = f"control has {share:.1%} of customers, configured {holdout_percent:g}%: " + (
        "assignment may be broken" if mismatch else "as configured"
    )
    return SampleRatioCheck(share, configured, p_value, mismatch, message)


def _check_inputs(treated: Arm, control: Arm, holdout_percent: float, confidence: float) -> None:
    """Raise ValueError naming the first input no report can be made from."""
    for name, arm in (("treated", treated), ("control", control)):
        if arm.customers < 0 or not 0 <= arm.conversions <= arm.customers:
            raise ValueError(
                f"{name}: {arm.conversions} conversions among {arm.customers} customers; "
                "expected 0 <= conversions <= customers (count each converted customer once)"
            )
        if arm.value is not None and not math.isfinite(arm.value):
            raise ValueError(f"{name}: value is {arm.value}; expected a finite sum or None")
    if not 0.0 < holdout_percent < 100.0:
        raise ValueError(
            f"holdout_percent is {holdout_percent}; expected a percent strictly between 0 and "
            "100 (without a holdout there is no control to compare with)"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence is {confidence}; expected a fraction such as 0.95")


def _difference(treated_rate: float | None, control_rate: float | None) -> float | None:
    if treated_rate is None or control_rate is None:
        return None
    return treated_rate - control_rate


def _adjusted(arm: Arm) -> tuple[float, float]:
    """Agresti–Caffo: the rate after one more conversion and one more non-conversion, and the
    variance of that rate. Never 0 or 1, so the variance is never 0."""
    customers = arm.customers + 2
    rate = (arm.conversions + 1) / customers
    return rate, rate * (1.0 - rate) / customers


def _absolute_interval(treated: Arm, control: Arm, observed: float | None, z: float) -> Interval:
    """Centre ± z · standard error on the Agresti–Caffo rates, within [-1, 1].

    The adjusted centre sits up to 2 / (customers + 2) nearer zero than the observed
    difference; below about 85 % confidence (z < sqrt(2)), with every customer of one arm
    converted and none of the other, that is more than the half-width. The interval then
    stretches to the observed difference: a reader should never see an estimate outside it.
    """
    treated_rate, treated_variance = _adjusted(treated)
    control_rate, control_variance = _adjusted(control)
    centre = treated_rate - control_rate
    half_width = z * math.sqrt(treated_variance + control_variance)
    low, high = max(-1.0, centre - half_width), min(1.0, centre + half_width)
    if observed is None:
        return Interval(low, high)
    return Interval(min(low, observed), max(high, observed))


def _sequential_z(customers: int, alpha: float, planned_customers: int) -> float:
    """The multiplier of the two-sided normal-mixture confidence sequence after `customers`.

    With mixing variance rho² per customer and x = customers · rho², the mixture likelihood ratio
    of a z-statistic is (1 + x)^(-1/2) · exp(x · z² / (2 · (1 + x))); it reaches 1 / alpha at
    z² = (1 + x) / x · (2 · ln(1 / alpha) + ln(1 + x)). rho² is chosen so that the multiplier is
    smallest near `planned_customers` (the choice in Waudby-Smith et al., arXiv:2103.06476).
    """
    log_inverse_alpha = -math.log(alpha)
    rho_squared = (2.0 * log_inverse_alpha + math.log(1.0 + 2.0 * log_inverse_alpha)) / (
        planned_customers
    )
    x = max(customers, 1) * rho_squared
    return math.sqrt((1.0 + x) / x * (2.0 * log_inverse_alpha + math.log1p(x)))


def _relative_uplift(treated: Arm, control: Arm) -> float | None:
    if treated.rate is None or control.rate is None or control.conversions == 0:
        return None
    return treated.rate / control.rate - 1.0


def _relative_interval(
    relative: float | None, treated: Arm, control: Arm, z: float
) -> Interval | None:
    """Delta method on treated/control: var ≈ var_t / c² + t² · var_c / c⁴ (Agresti–Caffo
    rates, so an arm with 0 or all conversions still has a spread). Never below -1."""
    if relative is None:
        return None
    treated_rate, treated_variance = _adjusted(treated)
    control_rate, control_variance = _adjusted(control)
    variance = treated_variance / control_rate**2 + (
        treated_rate**2 * control_variance / control_rate**4
    )
    half_width = z * math.sqrt(variance)
    return Interval(max(-1.0, relative - half_width), relative + half_width)


def _incremental_value(treated: Arm, control: Arm) -> float | None:
    if treated.value is None or control.value is None or control.customers == 0:
        return None
    return treated.value - treated.customers * control.value / control.customers


def _verdict(
    interval: Interval,
    absolute: float | None,
    control: Arm,
    customers: int,
    holdout_share: float,
    critical: Callable[[int], float],
    minimum_detectable_uplift: float,
) -> tuple[str, int | None, float | None]:
    """(verdict, more customers needed, the uplift they are planned for)."""
    if interval.low > 0.0:
        return BETTER, None, None
    if interval.high < 0.0:
        return WORSE, None, None
    control_rate, _ = _adjusted(control)
    planned = max(abs(absolute or 0.0), minimum_detectable_uplift * control_rate)
    needed = _customers_needed(planned, control_rate, holdout_share, critical, customers)
    if needed > 0:
        return f"{NO_EVIDENCE}: needs about {_about(needed)} more customers", needed, planned
    # Enough customers to see the planned uplift, and it did not show: say what is known.
    bounds = f"{interval.low * 100:+.2f} and {interval.high * 100:+.2f} percentage points"
    return f"{NO_EVIDENCE}: the uplift is between {bounds}", 0, planned


def _customers_needed(
    uplift: float,
    control_rate: float,
    holdout_share: float,
    critical: Callable[[int], float],
    current: int,
) -> int:
    """More customers (both arms) until a test at `critical(total)` has `PLANNED_POWER` to see
    `uplift` over `control_rate` with the configured split; 0 when there are already enough."""
    treated_rate = min(1.0, control_rate + uplift)
    spread = math.sqrt(
        treated_rate * (1.0 - treated_rate) / (1.0 - holdout_share)
        + control_rate * (1.0 - control_rate) / holdout_share
    )
    z_power = _NORMAL.inv_cdf(PLANNED_POWER)

    def enough(total: int) -> bool:
        return math.sqrt(total) * uplift / spread >= critical(total) + z_power

    low = max(current, 1)
    if enough(low):
        return 0
    high = 2 * low
    while not enough(high):  # ends: sqrt(total) outgrows the multiplier's sqrt(log(total))
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high - current


def _about(customers: int) -> str:
    """`customers` to two significant figures, with thousands separators: 12,345 -> 12,000."""
    if customers < 100:
        return str(customers)
    digits = len(str(customers)) - 2
    return f"{round(customers, -digits):,}"
