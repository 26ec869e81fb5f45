"""The embedded platform's background services (Trino, SeaweedFS) and their lifecycle."""
