"""Spend as FOCUS rows: read and check FOCUS CSV exports, and emit FOCUS rows for a fleet.

FOCUS (the FinOps Open Cost and Usage Specification, 1.x) is one row per charge per charge
period. The columns used here and the checks made on them follow the 1.x column
definitions, written down here rather than taken from the `focus-validator` package: its
1.0.0 release needs pandera 0.17 and would downgrade this project's numpy 2 to 1.26, and,
tried in a separate environment, its "1.0" rules still use 1.0-preview names (ChargeType,
ResourceID, Provider, Publisher, InvoiceIssuer), its currency-code check fails on every file,
and it names a bad decimal for the whole file, not the row. The checks:

- required (a file without one of them is rejected whole): BilledCost and EffectiveCost
  (decimal), BillingCurrency (ISO 4217, three letters), ChargePeriodStart and
  ChargePeriodEnd (ISO 8601 UTC date-times, end after start), ChargeCategory (one of
  Usage, Purchase, Tax, Credit, Adjustment), ServiceName (not empty);
- checked when present: ListCost, ContractedCost, ConsumedQuantity, PricingQuantity
  (decimal), BillingPeriodStart/End (date-times), ChargeClass (empty or Correction),
  ChargeFrequency (One-Time, Recurring, Usage-Based);
- read as dimensions: RegionId, ResourceId, ResourceType, SkuId and the custom column
  x_UsageType (FOCUS allows provider columns prefixed x_; AWS's FOCUS export carries its
  usage type there). The usage type of a row is x_UsageType, else SkuId, else ChargeCategory.

Every bad row is reported by file, line, column and value, and left out; the rest is kept.
Spend is EffectiveCost (amortised: what the FinOps Foundation recommends for analysis).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from opsloop.tools.protocols import Telemetry

REQUIRED = ("BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart",
            "ChargePeriodEnd", "ChargeCategory", "ServiceName")
DECIMALS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ConsumedQuantity",
            "PricingQuantity")
DATETIMES = ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd")
CHARGE_CATEGORIES = frozenset({"Usage", "Purchase", "Tax", "Credit", "Adjustment"})
CHARGE_CLASSES = frozenset({"", "Correction"})
CHARGE_FREQUENCIES = frozenset({"", "One-Time", "Recurring", "Usage-Based"})
COLUMNS = ("BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart",
           "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
           "ChargeClass", "ChargeDescription", "ChargeFrequency", "BilledCost",
           "EffectiveCost", "ListCost", "ListUnitPrice", "ContractedCost",
           "ContractedUnitPrice", "ConsumedQuantity", "ConsumedUnit", "PricingCategory",
           "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName",
           "InvoiceIssuerName", "ServiceCategory", "ServiceName", "RegionId", "RegionName",
           "ResourceId", "ResourceName", "ResourceType", "SkuId", "SkuPriceId",
           "SubAccountId", "SubAccountName", "Tags", "x_UsageType")
METRIC = "cost_per_hour"
SIM_USAGE_TYPE = "replica-hours"
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Charge:
    """One FOCUS row, reduced to what the cost agent reads."""

    start: datetime
    end: datetime
    service: str
    region: str
    usage_type: str
    resource: str
    effective_cost: float
    billed_cost: float
    currency: str


@dataclass(frozen=True)
class Problem:
    """A bad row (or file): where, which column, what value, and what is wrong."""

    file: str
    line: int
    column: str
    value: str
    problem: str

    def __str__(self) -> str:
        return (f"{self.file}:{self.line}: {self.column}={self.value!r}: {self.problem}")


def parse_time(value: str) -> datetime:
    """A FOCUS date-time (ISO 8601 in UTC, `Z` or +00:00) as an aware datetime."""
    at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if at.tzinfo is None or at.utcoffset() != timedelta(0):
        raise ValueError("not UTC: FOCUS date-times are UTC (end with Z)")
    return at.astimezone(UTC)


def check_row(row: dict[str, str]) -> tuple[str, str] | None:
    """The first (column, problem) in one row, or None when it is a valid FOCUS row."""
    for column in REQUIRED:
        if not (row.get(column) or "").strip():
            return column, "required and empty"
    for column in DECIMALS:
        value = (row.get(column) or "").strip()
        if value:
            try:
                number = Decimal(value)
            except InvalidOperation:
                return column, "not a decimal number"
            if not number.is_finite():
                return column, "not a finite number"
    for column in DATETIMES:
        value = (row.get(column) or "").strip()
        if value:
            try:
                parse_time(value)
            except ValueError as exc:
                return column, f"not an ISO 8601 UTC date-time ({exc})"
    if parse_time(row["ChargePeriodEnd"]) <= parse_time(row["ChargePeriodStart"]):
        return "ChargePeriodEnd", "not after ChargePeriodStart"
    if row["ChargeCategory"].strip() not in CHARGE_CATEGORIES:
        return "ChargeCategory", f"not one of {', '.join(sorted(CHARGE_CATEGORIES))}"
    if (row.get("ChargeClass") or "").strip() not in CHARGE_CLASSES:
        return "ChargeClass", "must be empty or Correction"
    if (row.get("ChargeFrequency") or "").strip() not in CHARGE_FREQUENCIES:
        return "ChargeFrequency", "not one of One-Time, Recurring, Usage-Based"
    currency = row["BillingCurrency"].strip()
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        return "BillingCurrency", "not an ISO 4217 code (three capital letters)"
    return None


def charge_of(row: dict[str, str]) -> Charge:
    """A checked FOCUS row as a Charge."""
    usage = ((row.get("x_UsageType") or "").strip() or (row.get("SkuId") or "").strip()
             or row["ChargeCategory"].strip())
    return Charge(
        start=parse_time(row["ChargePeriodStart"]), end=parse_time(row["ChargePeriodEnd"]),
        service=row["ServiceName"].strip(), region=(row.get("RegionId") or "").strip() or "-",
        usage_type=usage, resource=(row.get("ResourceId") or "").strip(),
        effective_cost=float(Decimal(row["EffectiveCost"])),
        billed_cost=float(Decimal(row["BilledCost"])), currency=row["BillingCurrency"].strip())


def read_focus(paths: Iterable[Path]) -> tuple[list[Charge], list[Problem]]:
    """Every valid row of these FOCUS CSV files, and every bad row or file named."""
    charges: list[Charge] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                header = reader.fieldnames or []
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    problems.append(Problem(str(path), 1, ",".join(missing), "",
                                            "required FOCUS column(s) missing: file skipped"))
                    continue
                for row in reader:
                    found = check_row(row)
                    if found is None:
                        charges.append(charge_of(row))
                        continue
                    column, problem = found
                    problems.append(Problem(str(path), reader.line_num, column,
                                            str(row.get(column) or ""), problem))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            problems.append(Problem(str(path), 0, "", "", f"unreadable: {exc}"))
    return charges, problems


def problems_json(problems: list[Problem]) -> list[dict[str, Any]]:
    return [asdict(p) for p in problems]


# -- the simulator's fleet as FOCUS rows ------------------------------------------------------

def fleet_rows(telemetry: Telemetry, now: datetime, since: datetime,
               until: datetime) -> list[dict[str, str]]:
    """FOCUS rows, one per service and whole hour in [since, until) (`now` is production's
    clock, where the telemetry's "last minutes" end), from each service's
    `cost_per_hour` (USD/h, one point per minute) read through the Telemetry protocol.

    An hour's cost is the sum of its minutes' points / 60. Only hours recorded whole are
    billed: the hour the record starts in is partial, and billing a fraction of it would
    read as a drop in spend. ConsumedQuantity is replica-hours from the `replicas`
    metric when it is there.
    """
    minutes = max(1, math.ceil((now - since).total_seconds() / 60) + 1)
    rows: list[dict[str, str]] = []
    for info in sorted(telemetry.services(), key=lambda s: s.name):
        try:
            cost = telemetry.metric(info.name, METRIC, minutes).points
        except KeyError:
            continue
        try:
            replicas = {p.at: p.value for p in
                        telemetry.metric(info.name, "replicas", minutes).points}
        except KeyError:
            replicas = {}
        hours: dict[datetime, list[float]] = {}
        counts: dict[datetime, int] = {}
        for point in cost:
            # A minute's point stands for the minute ending at it.
            hour = (point.at - timedelta(minutes=1)).replace(minute=0, second=0,
                                                             microsecond=0)
            if not (since <= hour and hour + HOUR <= until) or not math.isfinite(point.value):
                continue
            cell = hours.setdefault(hour, [0.0, 0.0])
            cell[0] += point.value / 60
            cell[1] += replicas.get(point.at, math.nan) / 60
            counts[hour] = counts.get(hour, 0) + 1
        for hour in sorted(h for h in hours if counts[h] >= 60):
            spend, replica_hours = hours[hour]
            rows.append(_row(info.name, info.region or "-", hour, spend, replica_hours))
    return rows


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(service: str, region: str, hour: datetime, spend: float,
         replica_hours: float) -> dict[str, str]:
    month = hour.replace(day=1, hour=0)
    next_month = (month + timedelta(days=32)).replace(day=1)
    cost = f"{spend:.6f}"
    quantity = "" if math.isnan(replica_hours) else f"{replica_hours:.4f}"
    unit_price = ("" if math.isnan(replica_hours) or replica_hours <= 0
                  else f"{spend / replica_hours:.6f}")
    return {
        "BillingAccountId": "opsloop-sim", "BillingAccountName": "opsloop simulator",
        "BillingCurrency": "USD", "ChargeFrequency": "Usage-Based",
        "ListUnitPrice": unit_price, "ContractedUnitPrice": unit_price,
        "PricingCategory": "Standard", "RegionName": region,
        "ResourceName": service, "SkuPriceId": f"{service}-replica-hour-usd",
        "SubAccountId": "fleet", "SubAccountName": "simulated fleet", "Tags": "{}",
        "BillingPeriodStart": _iso(month), "BillingPeriodEnd": _iso(next_month),
        "ChargePeriodStart": _iso(hour), "ChargePeriodEnd": _iso(hour + timedelta(hours=1)),
        "ChargeCategory": "Usage", "ChargeClass": "",
        "ChargeDescription": f"{service} replicas", "BilledCost": cost,
        "EffectiveCost": cost, "ListCost": cost, "ContractedCost": cost,
        "ConsumedQuantity": quantity, "ConsumedUnit": "Hours", "PricingQuantity": quantity,
        "PricingUnit": "Hours", "ProviderName": "opsloop simulator",
        "PublisherName": "opsloop simulator", "InvoiceIssuerName": "opsloop simulator",
        "ServiceCategory": "Compute", "ServiceName": service, "RegionId": region,
        "ResourceId": f"deployment/{service}", "ResourceType": "Deployment",
        "SkuId": f"{service}-replica-hour", "x_UsageType": SIM_USAGE_TYPE,
    }


def write_focus_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """Rows as a FOCUS CSV file (the columns above, in that order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path
