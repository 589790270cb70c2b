"""People who use the dashboard: users, passwords and browser sessions."""
