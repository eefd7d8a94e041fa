"""The explain eval: python -m bench.explain_eval (see __main__.py)."""
