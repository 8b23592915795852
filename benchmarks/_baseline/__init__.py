"""Frozen copies of the code as it was before the issue-20 speed work (commit 13bb0df), imported only by
`benchmarks/speed.py` to measure the optimised code against it in the same process. Not part of the product:
the zoo never imports this package. The LPIPS baseline is the `lpips` package itself (what the zoo called)."""
