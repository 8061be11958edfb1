"""Accounts: `flask users create-admin`, `flask users set-role`, `flask seed-demo`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from atomicseats.domain import accounts
from atomicseats.errors import AtomicSeatsError
from atomicseats.services import demo, users

users_cli = AppGroup("users", help="Manage accounts.")


@users_cli.command("create-admin")
@click.option("--username", required=True)
@click.option("--email", required=True)
@click.option("--password", required=True, help=f"Password: {accounts.PASSWORD_RULE}.")
@click.option("--name", default=None, help="Display name (defaults to the username).")
def create_admin_command(username: str, email: str, password: str, name: str | None) -> None:
    """Create an administrator (the only way to get one besides another admin)."""
    try:
        user = users.create_admin(username, name or username, email, password)
    except AtomicSeatsError as error:
        raise click.ClickException(_describe(error)) from error
    click.echo(f"created admin {user.username} (id {user.id})")


@users_cli.command("set-role")
@click.argument("login")
@click.argument("role", type=click.Choice(accounts.ROLES))
def set_role_command(login: str, role: str) -> None:
    """Make the user LOGIN (username or e-mail) a guest, host or admin. As on the admin
    pages: the last admin cannot be demoted, and the user's sessions end."""
    try:
        change = users.set_role_by_operator(login, role)
    except AtomicSeatsError as error:
        raise click.ClickException(_describe(error)) from error
    if not change.is_changed:
        click.echo(f"{change.user.username} is already {role}")
        return
    ended = f"{change.sessions_ended} session{'' if change.sessions_ended == 1 else 's'} ended"
    click.echo(f"{change.user.username}: {change.previous_role} -> {role} ({ended})")


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Create demo accounts and events (embedded default only; idempotent)."""
    try:
        created = demo.seed_demo()
    except AtomicSeatsError as error:
        raise click.ClickException(_describe(error)) from error
    click.echo("Demo accounts (username / password):")
    for account in demo.DEMO_ACCOUNTS:
        marker = "new" if account in created else "existing"
        click.echo(f"  {account.role:<6} {account.username:<8} / {account.password}   ({account.email}, {marker})")


def _describe(error: AtomicSeatsError) -> str:
    details = "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in error.errors.items())
    return f"{error.message}{' (' + details + ')' if details else ''}"
