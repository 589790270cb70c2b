"""Insights: anomaly episodes a person hears about, with their life cycle."""
