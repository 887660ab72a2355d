"""depictiod: the command line that checks, scans and serves a Depictio catalog."""
