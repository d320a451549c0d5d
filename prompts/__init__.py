"""Versioned rubric files (package data). `judge.load_rubric` reads them; the version is the file's sha256."""
