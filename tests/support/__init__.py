"""Shared test support: fixtures, builders, fakes and the contract checker (no tests here)."""
