"""Runbook retrieval: lexical ranking, embedding backends, fusion and the no-match call."""
