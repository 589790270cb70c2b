"""The HTTP service: Segment ingest, the dashboard API and the web pages."""
