"""Schema migrations, applied in order by `navarch.store.schema`: `NNNN_name.sql` files, and
`NNNN_name.py` modules whose `migrate(conn)` rewrites rows that SQL alone cannot."""
