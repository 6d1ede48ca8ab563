"""Backend-for-frontend of the mini-program shop."""
