"""Storage: one SQLAlchemy schema for SQLite, PostgreSQL and MariaDB."""
