"""The browser client: plain ES modules served by the server (see docs/browser.md)."""
