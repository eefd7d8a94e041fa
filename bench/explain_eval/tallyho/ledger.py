"""Ledger entries: parsing the pipe-separated journal and reconciling it with a bank statement."""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

DATE_SLACK_DAYS = 3


class JournalError(ValueError):
    """A journal line could not be parsed; ``lineno`` is 1-based."""

    def __init__(self, lineno, reason):
        super().__init__(f"line {lineno}: {reason}")
        self.lineno = lineno


@dataclass(frozen=True)
class Entry:
    day: date
    category: str
    amount: Decimal
    note: str = ""


def parse_line(line, lineno=1):
    """'2026-03-01|groceries|-12.50|weekly shop' -> Entry; the note is optional."""
    parts = [p.strip() for p in line.split("|")]
    if len(parts) not in (3, 4):
        raise JournalError(lineno, f"expected 3 or 4 fields, got {len(parts)}")
    try:
        day = date.fromisoformat(parts[0])
    except ValueError:
        raise JournalError(lineno, f"bad date {parts[0]!r}") from None
    try:
        amount = Decimal(parts[2])
    except InvalidOperation:
        raise JournalError(lineno, f"bad amount {parts[2]!r}") from None
    return Entry(day, parts[1].lower(), amount, parts[3] if len(parts) == 4 else "")


def read_journal(text):
    """Entries of a journal; blank lines and lines starting with '#' are skipped."""
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            entries.append(parse_line(line, lineno))
    return entries


@dataclass
class Reconciliation:
    matched: list = field(default_factory=list)     # (entry, statement entry) pairs
    missing: list = field(default_factory=list)     # in the journal, not on the statement
    unexpected: list = field(default_factory=list)  # on the statement, not in the journal


def reconcile(journal, statement):
    """Pairs each journal entry with an unused statement entry of the same amount dated within DATE_SLACK_DAYS."""
    result = Reconciliation()
    unused = list(statement)
    for entry in sorted(journal, key=lambda e: e.day):
        slack = timedelta(days=DATE_SLACK_DAYS)
        match = next((s for s in unused if s.amount == entry.amount and abs(s.day - entry.day) <= slack), None)
        if match is None:
            result.missing.append(entry)
        else:
            unused.remove(match)
            result.matched.append((entry, match))
    result.unexpected = unused
    return result


def monthly_totals(entries):
    """{(year, month): {category: total}} with categories summed as Decimals."""
    totals = {}
    for e in entries:
        month = totals.setdefault((e.day.year, e.day.month), {})
        month[e.category] = month.get(e.category, Decimal("0")) + e.amount
    return totals
