"""tallyho: a small household-ledger toolkit, written for engram-ls's explain eval (code no model was trained on)."""
