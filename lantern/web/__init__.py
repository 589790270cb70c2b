"""The dashboard's web pages: plain HTML, CSS and JavaScript served by the app (no build step)."""
