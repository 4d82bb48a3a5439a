"""Benchmarks behind ``make bench``: ratios against a baseline measured in the same run, medians reported."""
