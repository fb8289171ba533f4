"""The bank example: accounts that are opened, credited, debited (no overdraft) and earn interest."""

from examples.bank.domain import (
    AccountClosed,
    AccountCredited,
    AccountDebited,
    AccountOpened,
    AccountState,
    AlreadyOpen,
    ApplyInterest,
    CloseAccount,
    Credit,
    Debit,
    InsufficientFunds,
    InterestApplied,
    InvalidAmount,
    NotOpen,
    OpenAccount,
    account,
)

__all__ = [
    "AccountClosed",
    "AccountCredited",
    "AccountDebited",
    "AccountOpened",
    "AccountState",
    "AlreadyOpen",
    "ApplyInterest",
    "CloseAccount",
    "Credit",
    "Debit",
    "InsufficientFunds",
    "InterestApplied",
    "InvalidAmount",
    "NotOpen",
    "OpenAccount",
    "account",
]
