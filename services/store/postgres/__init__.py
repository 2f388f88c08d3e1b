"""PostgreSQL adapters: one database shared by several instances (Heroku Postgres, Render's)."""
