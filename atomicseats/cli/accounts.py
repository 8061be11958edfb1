"""Accounts: `flask users list|create-admin|set-role|disable|enable|reset-password|revoke-sessions`,
`flask seed-demo`. Each command calls one service (services/users.py), as the admin pages do;
a user is named by username or e-mail address (any letter case)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from atomicseats.domain import accounts, limits
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
    click.echo(f"{change.user.username}: {change.previous_role} -> {role} ({_sessions_ended(change.sessions_ended)})")


@users_cli.command("list")
@click.option("--search", default=None, help="Part of a username, name or e-mail address (any letter case).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most this many (default: all).")
def list_command(search: str | None, limit: int | None) -> None:
    """List accounts, newest first: id, username, e-mail, role, status and creation time."""
    shown, cursor = 0, None
    click.echo(f"{'id':>6}  {'username':<24} {'email':<32} {'role':<6} {'status':<8} created")
    while limit is None or shown < limit:  # bounded: each page moves the cursor back in ids
        page_size = limits.USERS_PAGE_SIZE_MAX if limit is None else min(limits.USERS_PAGE_SIZE_MAX, limit - shown)
        try:
            page = users.list_users_for_operator(search, page_size, cursor)
        except AtomicSeatsError as error:
            raise click.ClickException(_describe(error)) from error
        for user in page.items:
            status = "disabled" if user.disabled_at is not None else "active"
            created = user.created_at.strftime("%Y-%m-%d %H:%M")
            click.echo(f"{user.id:>6}  {user.username:<24} {user.email:<32} {user.role:<6} {status:<8} {created}")
        shown += len(page.items)
        if not page.has_more:
            break
        cursor = page.next_cursor
    click.echo(f"{shown} user{'' if shown == 1 else 's'}")


@users_cli.command("disable")
@click.argument("login")
def disable_command(login: str) -> None:
    """Disable the user LOGIN: every session ends at once (API tokens and browser cookies)
    and logging in is refused (403) until `flask users enable`."""
    try:
        change = users.set_disabled_by_operator(login, is_disabled=True)
    except AtomicSeatsError as error:
        raise click.ClickException(_describe(error)) from error
    state = "disabled" if change.is_changed else "was already disabled"
    click.echo(f"{change.user.username} {state} ({_sessions_ended(change.sessions_ended)})")


@users_cli.command("enable")
@click.argument("login")
def enable_command(login: str) -> None:
    """Enable the user LOGIN again: they can log in (no old session comes back)."""
    try:
        change = users.set_disabled_by_operator(login, is_disabled=False)
    except AtomicSeatsError as error:
        raise click.ClickException(_describe(error)) from error
    click.echo(f"{change.user.username} {'enabled' if change.is_changed else 'was already enabled'}")


@users_cli.command("reset-password")
@click.argument("login")
@click.option(
    "--password",
    default=None,
    help=f"The new password ({accounts.PASSWORD_RULE}); without it a random one is made and printed once.",
)
def reset_password_command(login: str, password: str | None) -> None:
    """Set a new password for the user LOGIN and end every session of theirs."""
    try:
        change, new_password = users.reset_password_by_operator(login, password)
    except AtomicSeatsError as error:
        raise click.ClickException(_describe(error)) from error
    click.echo(f"{change.user.username}: password reset ({_sessions_ended(change.sessions_ended)})")
    if password is None:
        click.echo(f"new password: {new_password}")


@users_cli.command("revoke-sessions")
@click.argument("login")
def revoke_sessions_command(login: str) -> None:
    """End every session of the user LOGIN (tokens and browser cookies stop working at once);
    they can log in again."""
    try:
        change = users.revoke_sessions_by_operator(login)
    except AtomicSeatsError as error:
        raise click.ClickException(_describe(error)) from error
    click.echo(f"{change.user.username}: {_sessions_ended(change.sessions_ended)}")


def _sessions_ended(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'} ended"


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
