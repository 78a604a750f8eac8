"""The control-plane wire API: Connect unary over JSON."""
