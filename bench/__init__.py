"""Benchmarks that time depictiod against bare tools on the same files, in one run."""
