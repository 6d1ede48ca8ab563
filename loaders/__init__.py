"""DataLoader batch functions per domain, and the per-request `Loaders` object that holds them."""
