"""Measures: pure tensor maths, numpy or torch in, typed results out."""
