"""Loyalty: a self-hosted loyalty-points programme backend (the app: `loyalty.app`)."""
