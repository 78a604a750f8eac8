"""The built-in metrics sources beyond `http-json`, one module per queue system; the plugin module
`navarch.plugins.builtin.metrics_sources` registers them."""
