"""Browser tests: the dashboard and widgets in Debian's chromium, driven by Playwright."""
