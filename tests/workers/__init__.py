"""Worker processes sharing one store: real ``turnkit serve`` processes, HTTP, SIGKILL, SIGSTOP."""
