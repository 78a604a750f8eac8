"""PostgreSQL schema migrations, applied in order by `navarch.store.postgres_schema`:
`NNNN_name.sql` files, numbered on their own (their 0001 is the SQLite store's schema as of its
0007, already in the store's own format)."""
