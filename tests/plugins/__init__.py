"""Test-only plugins, registered per test through ``create_app(plugins=[...])``."""
