"""The shell service: commands and long-running processes, authorised fail-closed."""

from .policy import ShellRefused
from .service import ShellService
from .settings import ShellSettings

__all__ = ["ShellRefused", "ShellService", "ShellSettings"]
