"""The rules console: sign-in, the rules API, preview, publish, history and rollback."""
